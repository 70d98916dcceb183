"""Build the optional C accelerator for canonical CBOR (``aos.kernel.world._ccbor``).

Everything else about the package is in ``pyproject.toml``. The extension is
optional: where it cannot be compiled, ``kernel/world/cbor.py`` runs its
Python encoder, which gives the same bytes, only slower.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("aos.kernel.world._ccbor", ["kernel/world/_ccbor.c"], optional=True,
                             extra_compile_args=["-O2"])])

"""Test helpers shipped with the package, so users can test their own clients and
worlds the way we test ours: ``KernelProcess`` puts a real kernel in a subprocess.
"""

from aos.kernel.process import KernelProcess, KernelStartError

__all__ = ["KernelProcess", "KernelStartError"]

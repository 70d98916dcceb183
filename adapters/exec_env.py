"""What a ``host.exec`` command's environment may hold, sans-IO.

A grant that allows ``echo`` must run ``echo``, and nothing ``echo`` is made
to load. The environment is the easiest way to break that: ``LD_PRELOAD`` of
a library the world wrote with ``host.fs.write`` runs the world's code inside
any dynamically linked program. So the environment is built, never
inherited, and a world's ``env`` param is held to two rules:

1. **Only names the grant allows** (its ``allow_env``: exact names, or
   prefixes ending in ``*``; ``"*"`` is any name). The default is none.
2. **Never a name in ``DENIED``**, whatever ``allow_env`` says. Those are the
   variables the layers *under* every program read to decide what code to
   load or run, or where to look for it: the dynamic loader and libc, the
   shells, the interpreters' startup hooks and module paths, git, and the
   common "name a program to run" variables. Matching ignores case (a
   lower-case ``ld_preload`` is refused too, though the loader would not
   read it: no legitimate use needs it).

Names must look like ``[A-Za-z_][A-Za-z0-9_]*``; values must not hold NUL.

What ``DENIED`` does not and cannot cover: an allowed program that reads
its instructions from files the world can write (``git`` hooks and
``.git/config``, ``make``'s Makefile, ``npm`` scripts, ``pytest``'s
conftest.py, any interpreter's script) runs the world's code by design, and
so does a program that takes a program from a variable a grant allows (a
build's ``CC``). Allowing such a program is allowing arbitrary code; see
docs/security.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# name (exact) or prefix (ending in *), matched case-insensitively -> why it is refused
DENIED: dict[str, str] = {
    # the dynamic loader and libc load code or data files from these
    "LD_*": "the dynamic loader reads it (preloads, library paths, audit modules)",
    "DYLD_*": "the macOS dynamic loader reads it",
    "GLIBC_TUNABLES": "glibc's loader parses it",
    "MALLOC_*": "glibc's allocator reads it (MALLOC_TRACE writes a file)",
    "GCONV_PATH": "glibc loads character-set modules from it",
    "GETCONF_DIR": "glibc reads it",
    "LOCPATH": "glibc loads locale data from it",
    "NLSPATH": "glibc loads message catalogs from it",
    "HOSTALIASES": "the resolver reads a file named by it",
    "RESOLV_*": "the resolver reads it",
    "RES_OPTIONS": "the resolver reads it",
    "LOCALDOMAIN": "the resolver reads it",
    "TZDIR": "libc loads time-zone files from it",
    # where programs look for other programs and for their configuration
    "PATH": "commands are looked up on the kernel's own PATH",
    "CDPATH": "shells resolve cd through it",
    "FPATH": "shells autoload functions from it",
    "HOME": "programs read their configuration (~/.gitconfig, ...) from it",
    "XDG_*": "programs read their configuration from it",
    # shells run code named by these at startup or while running
    "ENV": "sh runs the file it names",
    "BASH_*": "bash runs the file BASH_ENV names, imports BASH_FUNC_* as functions, loads builtins",
    "SHELLOPTS": "bash reads its options from it",
    "BASHOPTS": "bash reads its options from it",
    "IFS": "it changes how shells split words",
    "PS4": "bash expands it (and runs its command substitutions) under xtrace",
    "PROMPT_COMMAND": "bash runs it",
    "ZDOTDIR": "zsh runs its startup files from it",
    "INPUTRC": "readline reads it",
    "SHELL": "programs run it as the user's shell",
    # interpreters load modules or run code named by these
    "PYTHON*": "Python reads it at startup (PYTHONPATH, PYTHONSTARTUP, PYTHONHOME, PYTHONWARNINGS, ...)",
    "PERL*": "Perl reads it at startup (PERL5OPT, PERL5LIB, ...)",
    "RUBY*": "Ruby reads it at startup (RUBYOPT, RUBYLIB)",
    "GEM_*": "RubyGems loads code from it",
    "NODE_*": "Node reads it at startup (NODE_OPTIONS=--require, NODE_PATH)",
    "NPM_CONFIG_*": "npm reads its configuration from it (script-shell, node-options, ...)",
    "LUA_*": "Lua runs LUA_INIT and loads modules from LUA_PATH",
    "JAVA_TOOL_OPTIONS": "the JVM reads it (-javaagent)",
    "_JAVA_OPTIONS": "the JVM reads it",
    "JDK_JAVA_OPTIONS": "the java launcher reads it",
    "CLASSPATH": "the JVM loads classes from it",
    "TCLLIBPATH": "Tcl loads packages from it",
    "PHPRC": "PHP reads its configuration from it",
    "PHP_INI_SCAN_DIR": "PHP reads its configuration from it",
    "R_PROFILE*": "R runs it at startup",
    "R_ENVIRON*": "R reads it at startup",
    "GOFLAGS": "go reads build flags from it (-toolexec)",
    "RUSTC*": "cargo runs the compiler (and wrappers) it names",
    "RUSTDOC*": "cargo runs the program it names",
    "CARGO_BUILD_*": "cargo runs the programs it names",
    # tools that run a program named in the environment
    "GIT_*": "git runs programs and reads configuration named by it (GIT_EXEC_PATH, GIT_SSH_COMMAND, GIT_CONFIG_*)",
    "EDITOR": "programs run it",
    "VISUAL": "programs run it",
    "PAGER": "programs run it",
    "MANPAGER": "man runs it",
    "LESSOPEN": "less runs it",
    "LESSCLOSE": "less runs it",
    "BROWSER": "programs run it",
    "SSH_ASKPASS": "ssh runs it",
    "SUDO_ASKPASS": "sudo runs it",
    "TAR_OPTIONS": "tar reads options from it (--to-command, --use-compress-program)",
    "RSYNC_RSH": "rsync runs it",
    "RSYNC_CONNECT_PROG": "rsync runs it",
    "CVS_RSH": "cvs runs it",
    "MAKEFLAGS": "make reads options and variable definitions (SHELL=...) from it",
    "MFLAGS": "make reads options from it",
    "GNUMAKEFLAGS": "make reads options from it",
    "MAKEFILES": "make reads the makefiles it names",
    "OPENSSL_*": "OpenSSL loads engines and modules named by its configuration",
    # libraries load plugins or parse files named by these
    "GTK_MODULES": "GTK loads the modules it names",
    "GTK_PATH": "GTK loads modules from it",
    "GIO_EXTRA_MODULES": "GIO loads modules from it",
    "GST_PLUGIN_*": "GStreamer loads plugins from it",
    "QT_PLUGIN_PATH": "Qt loads plugins from it",
    "LIBGL_DRIVERS_PATH": "Mesa loads drivers from it",
    "SASL_PATH": "Cyrus SASL loads plugins from it",
    "TERMINFO": "ncurses parses terminal descriptions from it",
    "TERMINFO_DIRS": "ncurses parses terminal descriptions from it",
    "TERMCAP": "ncurses parses it",
}
# harmless members of a denied prefix that tools commonly need
EXCEPT = frozenset({
    "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_AUTHOR_DATE",
    "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_COMMITTER_DATE",
})

MAX_NAME_CHARS = 128
MAX_ENV_VARS = 256  # variables a world may set through params
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXACT = {k for k in DENIED if not k.endswith("*")}
_PREFIXES = tuple(k[:-1] for k in DENIED if k.endswith("*"))


def denied(name: str) -> str | None:
    """Why ``name`` may never come from a world (None if it may)."""
    upper = name.upper()
    if upper in EXCEPT:
        return None
    if upper in _EXACT:
        return DENIED[upper]
    for prefix in _PREFIXES:
        if upper.startswith(prefix):
            return DENIED[prefix + "*"]
    return None


def valid_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= MAX_NAME_CHARS and _NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class EnvAllow:
    """A grant's ``allow_env``: exact names and ``PREFIX*`` patterns (case-sensitive)."""

    names: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, entries: object) -> EnvAllow:
        """From the grant value; raises ``ValueError`` with the reason if malformed."""
        if entries is None:
            return cls()
        if not isinstance(entries, (list, tuple)):
            raise ValueError("must be a list of variable names or NAME* prefixes")
        names, prefixes = set(), []
        for e in entries:
            if not isinstance(e, str) or not e:
                raise ValueError("must be a list of variable names or NAME* prefixes")
            if e.endswith("*"):
                if e[:-1] and not valid_name(e[:-1]):
                    raise ValueError(f"{e!r} is not a variable name prefix")
                prefixes.append(e[:-1])
            elif valid_name(e):
                names.add(e)
            else:
                raise ValueError(f"{e!r} is not a variable name")
        return cls(frozenset(names), tuple(prefixes))

    def allows(self, name: str) -> bool:
        return name in self.names or name.startswith(self.prefixes)


def check_world_env(names: Iterable[str], allow: EnvAllow) -> str | None:
    """The refusal for the first name a world may not set (None: all may be set)."""
    for name in names:
        why = denied(name)
        if why is not None:
            return f"environment variable {name!r} is never passed from a world: {why}"
        if not allow.allows(name):
            return f"environment variable {name!r} is not in the grant's allow_env"
    return None


def base_env(host: Mapping[str, str], path: str) -> dict[str, str]:
    """The environment every command starts from: the kernel's fixed ``PATH``, the
    host's ``HOME`` and ``LANG``, and ``TERM=dumb``."""
    return {
        "PATH": path,
        "HOME": host.get("HOME") or "/",
        "LANG": host.get("LANG") or "C.UTF-8",
        "TERM": "dumb",
    }

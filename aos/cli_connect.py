"""Where a command-line client finds its kernel (the address, the token, TLS) and what its token holds.

``aos`` and ``aos-shell`` share these options and their defaults:

- ``--connect ADDR`` (``$AOS_CONNECT``): ``unix:PATH``, ``tcp:HOST:PORT`` or
  ``tls:HOST:PORT``; default the local kernel's socket, ``unix:DATA/kernel.sock``
  (``DATA`` is ``$AOS_DATA`` or ``~/.local/share/aos/kernel``);
- ``--token-file FILE`` (``$AOS_TOKEN_FILE``): default ``DATA/admin.token``;
- ``--tls-ca PEM`` (``$AOS_TLS_CA``) and ``--tls-server-name NAME``
  (``$AOS_TLS_SERVER_NAME``): speak TLS to a TCP address, trusting that CA and
  checking that name (see ``docs/clients.md``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Any

from aos.errors import InvalidArgument, InvalidToken, KernelUnavailable, PermissionDenied
from aos.kernel.client import TlsOptions
from aos.kernel.config import default_data_dir

TLS_HELP = "connecting over TLS: docs/clients.md"


def kernel_command() -> str:
    """How to run aos-kernel from here: its name if it is on PATH, else its path (``.venv/bin/aos-kernel``)."""
    if shutil.which("aos-kernel"):
        return "aos-kernel"
    path = os.path.join(os.path.dirname(sys.executable), "aos-kernel")
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else path


def data_dir() -> str:
    return os.environ.get("AOS_DATA") or default_data_dir()


def default_connect() -> str:
    return os.environ.get("AOS_CONNECT") or "unix:" + os.path.join(data_dir(), "kernel.sock")


def default_token_file() -> str:
    return os.environ.get("AOS_TOKEN_FILE") or os.path.join(data_dir(), "admin.token")


def add_options(parser: argparse.ArgumentParser) -> None:
    """``--connect``, ``--token-file``, ``--tls-ca`` and ``--tls-server-name``."""
    parser.add_argument("--connect", default=None, metavar="ADDR",
                        help="kernel address: unix:PATH, tcp:HOST:PORT or tls:HOST:PORT "
                             "(default: $AOS_CONNECT, else the local kernel)")
    parser.add_argument("--token-file", default=None, metavar="FILE",
                        help="token to restore (default: $AOS_TOKEN_FILE, else the local admin token)")
    parser.add_argument("--tls-ca", default=None, metavar="PEM",
                        help="speak TLS to a TCP kernel, trusting this CA (or the kernel's self-signed "
                             "certificate) (default: $AOS_TLS_CA)")
    parser.add_argument("--tls-server-name", default=None, metavar="NAME",
                        help="the name the kernel's TLS certificate must carry (default: "
                             "$AOS_TLS_SERVER_NAME, else the host of the address)")


def tls_options(args: argparse.Namespace) -> TlsOptions | None:
    """The TLS options the arguments (or the environment) ask for; None for plain TCP."""
    return TlsOptions.from_env(getattr(args, "tls_ca", None), getattr(args, "tls_server_name", None))


def read_token(path: str, explicit: bool) -> str:
    """The token in ``path``. ``explicit``: the user named the file (so a missing one is their
    typo, not a kernel that never ran). Raises ``InvalidArgument``, ``InvalidToken`` or, for a
    missing default token, ``KernelUnavailable``."""
    try:
        with open(path, "rb") as f:
            raw = f.read(4096)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if explicit or not isinstance(exc, FileNotFoundError):
            raise InvalidArgument(f"cannot read token file {path}: {reason}") from None
        raise KernelUnavailable(f"no admin token at {path}: no local kernel has run yet; start one with "
                                f"`{kernel_command()}` (or pass --connect and --token-file)") from None
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        token = ""
        if raw.strip():
            raise InvalidToken(f"token file {path} does not hold a token (it is not text)") from None
    if not token:
        raise InvalidArgument(f"token file {path} is empty")
    if not token.isprintable() or any(ch.isspace() for ch in token):
        raise InvalidToken(f"token file {path} does not hold a token (one line of text, aos1_...)")
    return token


def addresses_of(args: argparse.Namespace) -> list[str]:
    """The addresses ``--connect`` names: one, or several comma-separated (a cluster's schedulers)."""
    spec = args.connect or default_connect()
    found = [a.strip() for a in spec.split(",") if a.strip()]
    if not found:
        raise InvalidArgument(f"--connect {spec!r} names no address")
    return found


async def connect(args: argparse.Namespace) -> tuple[Any, Held]:
    """Open the connection the options name and restore the token: ``(connection, what it holds)``.
    With several addresses (``A,B``: a cluster's schedulers) the first that answers is used."""
    addresses = addresses_of(args)
    explicit = args.token_file is not None or "AOS_TOKEN_FILE" in os.environ
    token = read_token(args.token_file or default_token_file(), explicit)
    failure: KernelUnavailable | None = None
    for address in addresses:
        try:
            return await _connect_one(address, token, tls_options(args))
        except KernelUnavailable as exc:
            failure = exc
    assert failure is not None
    if len(addresses) == 1:
        raise failure
    raise KernelUnavailable(f"nothing answers at {', '.join(addresses)}: {failure}")


async def _connect_one(address: str, token: str, tls: TlsOptions | None) -> tuple[Any, Held]:
    from aos.kernel.client import Connection

    conn = await Connection.open(address, tls=tls)
    try:
        cap, info = await conn.restore_with_info(token)
    except KernelUnavailable as exc:
        conn.close()
        if tls is None and address.startswith("tcp:"):
            raise KernelUnavailable(f"{exc} (if that listener speaks TLS, pass --tls-ca PEM; "
                                    f"{TLS_HELP})") from None
        raise
    except BaseException:
        conn.close()
        raise
    return conn, Held(cap, info)


class Held:
    """What the restored token gives a command: a Kernel capability mints anything; a narrower
    one (a saved, attenuated token) serves the commands of its own kind, in its own universe."""

    def __init__(self, cap: Any, info: Any) -> None:
        self.cap = cap
        self.info = info

    def universe(self, args: argparse.Namespace) -> str:
        asked = args.universe or os.environ.get("AOS_UNIVERSE") or ""
        if self.info.kind == "kernel":
            return asked or "default"
        if asked and asked != self.info.universe:
            raise PermissionDenied(f"this token's {self.info.kind} capability is for universe "
                                   f"{self.info.universe!r}, not {asked!r}")
        return str(self.info.universe)

    def _refuse(self, command: str) -> PermissionDenied:
        scope = f" for {self.info.world!r}" if self.info.world else ""
        needs = "the admin token (a kernel capability)" if command == "status" else \
            f"a {command} capability or the admin token"
        return PermissionDenied(f"this token holds a {self.info.kind} capability{scope} in universe "
                                f"{self.info.universe!r}; `aos {command}` needs {needs}")

    async def kernel(self, command: str) -> Any:
        if self.info.kind != "kernel":
            raise self._refuse(command)
        return self.cap

    async def cas(self, args: argparse.Namespace) -> Any:
        universe = self.universe(args)
        if self.info.kind == "cas":
            return self.cap
        return await (await self.kernel("cas")).cas(universe)

    async def journal(self, args: argparse.Namespace) -> Any:
        universe = self.universe(args)
        if self.info.kind == "journal":
            return self.cap
        return await (await self.kernel("journal")).journal(universe)

    async def worlds(self, args: argparse.Namespace) -> Any:
        universe = self.universe(args)
        if self.info.kind == "worlds":
            return self.cap
        if self.info.kind == "world":
            return OneWorld(self.cap, self.info.world)
        return await (await self.kernel("world")).worlds(universe)


class OneWorld:
    """A token for one world, standing in for ``Worlds``: it opens that world and nothing else."""

    def __init__(self, world: Any, world_id: str) -> None:
        self.world = world
        self.world_id = world_id

    async def open(self, world_id: str) -> Any:
        if world_id != self.world_id:
            raise PermissionDenied(f"this token is for world {self.world_id!r}, not {world_id!r}")
        return self.world

    def _refuse(self) -> PermissionDenied:
        return PermissionDenied(f"this token is for world {self.world_id!r} only: it cannot list, create or "
                                "fork worlds")

    def __getattr__(self, name: str) -> Any:
        # every other Worlds method (list, create, fork, ...) needs the Worlds capability
        async def refuse(*args: Any, **kwargs: Any) -> Any:
            raise self._refuse()

        return refuse

"""A session's history by reference: every message a CAS blob, the cell state a rope of hashes.

How it works. A message's blob is its canonical CBOR and its ref is that
blob's hash (``cbor.hash_value``), which the workflow computes itself, so no
I/O is needed to name it. The cell state keeps::

    {"prefix": [ref, chars],                    # {"system", "tools"}: the fixed part of each request
     "chunks": [[ref, messages, chars], ...],   # sealed runs of CHUNK message refs (blob: [ref, ...])
     "tail":   [[ref, chars, role], ...],       # the newest messages, fewer than 2 * CHUNK
     "unsent": {ref: value}}                    # blobs not yet known to be in CAS

An ``llm.generate`` intent names the context (``context(h)``) and carries
``unsent`` inline as ``blobs``; the kernel's adapter stores them in CAS
before it answers, so after an ok receipt they are durable and ``confirm``
drops them from the state. A failed or cancelled call leaves them unsent,
and the next intent carries them again. The state and each intent grow by
one chunk entry per CHUNK messages, whatever the messages hold, so the
1 MiB cell-state cap no longer bounds the history: the model's window does.

Compaction (``cut``/``compact``): the old part of the history is replaced by
one summary message the model wrote. The summary message carries the refs
of what it replaced (``replaces``: chunk refs, whose blobs list message
refs, and message refs), so the dropped span stays reachable in CAS; the
newest messages are kept as they are, from a message boundary (never a tool
result without the call that asked for it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aos.kernel.world import cbor

CHUNK = 32  # message refs per sealed chunk
SUMMARY_PREFIX = ("[Summary of the earlier conversation, written when the context window filled up; "
                  "the messages it replaces are kept in the session's CAS]\n\n")

History = dict[str, Any]


def new(system: str | None, tools: list[dict[str, Any]]) -> History:
    """An empty history whose requests have this system prompt and these tools."""
    prefix: dict[str, Any] = {"tools": tools}
    if system:
        prefix["system"] = system
    ref, size = _name(prefix)
    return {"prefix": [ref, size], "chunks": [], "tail": [], "unsent": {ref: prefix}}


def append(h: History, message: dict[str, Any]) -> str:
    """Add a message at the end; returns its ref."""
    ref, size = _name(message)
    h["tail"].append([ref, size, message.get("role", "user")])
    h["unsent"][ref] = message
    if len(h["tail"]) >= 2 * CHUNK:
        _seal(h)
    return ref


def _seal(h: History) -> None:
    run, h["tail"] = h["tail"][:CHUNK], h["tail"][CHUNK:]
    refs = [e[0] for e in run]
    ref, _ = _name(refs)
    h["chunks"].append([ref, len(refs), sum(e[1] for e in run)])
    h["unsent"][ref] = refs


def _name(value: Any) -> tuple[str, int]:
    data = cbor.encode(value)
    return cbor.sha256_text(data), len(data)


def chars(h: History) -> int:
    """The size of a request on this history, in encoded bytes (about the characters sent)."""
    return h["prefix"][1] + sum(c[2] for c in h["chunks"]) + sum(e[1] for e in h["tail"])


def messages(h: History) -> int:
    return sum(c[1] for c in h["chunks"]) + len(h["tail"])


def context(h: History) -> dict[str, Any]:
    """What an ``llm.generate`` intent names: the prefix, then the chunks' messages, then the tail's."""
    return {"prefix": h["prefix"][0], "chunks": [c[0] for c in h["chunks"]], "tail": [e[0] for e in h["tail"]]}


def confirm(h: History, refs: list[str]) -> None:
    """These blobs are in CAS now (an ``llm.generate`` that carried them answered ok)."""
    for ref in refs:
        h["unsent"].pop(ref, None)


def cut(h: History, keep_chars: int) -> int | None:
    """Where a compaction would cut the tail: the index from which the newest
    messages (at most ``keep_chars``, starting at a user or assistant message)
    are kept. ``None`` if there is nothing to replace."""
    tail = h["tail"]
    best, size = len(tail), 0
    for i in range(len(tail) - 1, -1, -1):
        size += tail[i][1]
        if size > keep_chars:
            break
        if tail[i][2] != "tool":
            best = i
    if sum(c[1] for c in h["chunks"]) + best < 2:
        return None  # replacing one message by its summary would not make room
    return best


def replaced(h: History, at: int) -> list[str]:
    """The refs a compaction at ``at`` replaces: every chunk, then the tail before ``at``."""
    return [c[0] for c in h["chunks"]] + [e[0] for e in h["tail"][:at]]


def compact(h: History, at: int, summary: str) -> tuple[str, dict[str, Any]]:
    """Replace everything before tail index ``at`` by a summary message; returns its ref and the message."""
    message = {"role": "user", "content": SUMMARY_PREFIX + summary, "replaces": replaced(h, at)}
    kept = h["tail"][at:]
    h["chunks"], h["tail"] = [], []
    ref = append(h, message)
    h["tail"].extend(kept)
    while len(h["tail"]) >= 2 * CHUNK:
        _seal(h)
    return ref, message


def expand(refs: list[str], get: Callable[[str], Any]) -> list[dict[str, Any]]:
    """The messages behind ``refs`` (message or chunk refs), with ``get(ref)`` reading a
    decoded blob (from CAS); a summary's ``replaces`` expands to the span it replaced."""
    out: list[dict[str, Any]] = []
    for ref in refs:
        value = get(ref)
        if isinstance(value, list):
            out.extend(expand(value, get))
        else:
            out.append(value)
    return out


def request(params: dict[str, Any], get: Callable[[str], Any]) -> dict[str, Any]:
    """An ``llm.generate`` intent's params with its context spelled out (``system``,
    ``tools``, ``messages`` inline, as the adapter assembles them); ``get(ref)`` reads a
    decoded blob. Params without a context are returned as they are."""
    ctx = params.get("context")
    if ctx is None:
        return params
    inline = params.get("blobs") or {}

    def read(ref: str) -> Any:
        return inline[ref] if ref in inline else get(ref)

    prefix = read(ctx["prefix"])
    out = {k: v for k, v in params.items() if k not in ("context", "blobs", "messages")}
    if prefix.get("system"):
        out["system"] = prefix["system"]
    out["tools"] = prefix.get("tools", [])
    out["messages"] = expand(list(ctx.get("chunks") or []) + list(ctx.get("tail") or []), read) + list(
        params.get("messages") or [])
    return out

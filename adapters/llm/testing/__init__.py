"""Provider twins: stand-ins for OpenAI, Anthropic, Gemini and
OpenAI-compatible servers that speak the real HTTP + SSE wire on
127.0.0.1, driven by scripts that also check each request. Shipped with
the package so users can test their own code the way we test ours::

    with ProviderTwin("anthropic") as twin:
        twin.script(Turn(ModelTurn(text="hi"), expect=lambda r: ...))
        client = twin.client()
        ...
        twin.assert_done()
"""

from .script import (
    ErrorReply,
    Faults,
    ModelTurn,
    RawReply,
    ScriptedCall,
    Turn,
    TwinRequest,
)
from .server import ProviderTwin

__all__ = ["ProviderTwin", "Turn", "ModelTurn", "ScriptedCall", "ErrorReply", "RawReply", "Faults", "TwinRequest"]

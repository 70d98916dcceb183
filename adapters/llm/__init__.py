"""The unified LLM layer: one set of types over OpenAI Responses, Anthropic
Messages, Gemini and OpenAI-compatible chat completions (see docs/llm.md)."""

from .abort import AbortController, AbortSignal
from .accumulator import StreamAccumulator
from .adapter import (
    AnthropicAdapter,
    GeminiAdapter,
    HttpAdapter,
    OpenAIAdapter,
    OpenAICompatibleAdapter,
    ProviderAdapter,
)
from .client import (
    Client,
    Middleware,
    StreamMiddleware,
    get_default_client,
    set_default_client,
)
from .errors import (
    AbortError,
    AccessDeniedError,
    AuthenticationError,
    ConfigurationError,
    ContentFilterError,
    ContextLengthError,
    InvalidRequestError,
    InvalidToolCallError,
    NetworkError,
    NoObjectGeneratedError,
    NotFoundError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeoutError,
    SDKError,
    ServerError,
    StreamError,
    UnsupportedToolChoiceError,
)
from .generate import (
    GenerateResult,
    StepResult,
    TimeoutConfig,
    generate,
    generate_object,
)
from .http import AdapterTimeout
from .retry import RetryPolicy, retry
from .streaming import StreamResult, stream, stream_object
from .tools import Tool
from .types import (
    AudioData,
    ContentKind,
    ContentPart,
    DocumentData,
    FinishReason,
    ImageData,
    Message,
    RateLimitInfo,
    Request,
    Response,
    ResponseFormat,
    Role,
    StreamEvent,
    StreamEventType,
    ThinkingData,
    ToolCall,
    ToolCallData,
    ToolChoice,
    ToolChoiceMode,
    ToolDefinition,
    ToolResult,
    ToolResultData,
    Usage,
    Warning,
)

__all__ = [
    # client and adapters
    "Client", "Middleware", "StreamMiddleware", "get_default_client", "set_default_client",
    "ProviderAdapter", "HttpAdapter", "OpenAIAdapter", "AnthropicAdapter", "GeminiAdapter",
    "OpenAICompatibleAdapter", "AdapterTimeout",
    # high level
    "generate", "stream", "generate_object", "stream_object", "GenerateResult", "StepResult", "StreamResult",
    "TimeoutConfig", "Tool", "StreamAccumulator", "RetryPolicy", "retry", "AbortController", "AbortSignal",
    # data model
    "Role", "ContentKind", "ContentPart", "Message", "ImageData", "AudioData", "DocumentData",
    "ToolCall", "ToolCallData", "ToolResult", "ToolResultData", "ThinkingData", "ToolChoice",
    "ToolChoiceMode", "ToolDefinition", "Request", "Response", "ResponseFormat", "FinishReason",
    "Usage", "Warning", "RateLimitInfo", "StreamEvent", "StreamEventType",
    # errors
    "SDKError", "ProviderError", "AuthenticationError", "AccessDeniedError", "NotFoundError",
    "InvalidRequestError", "RateLimitError", "ServerError", "ContentFilterError", "ContextLengthError",
    "QuotaExceededError", "RequestTimeoutError", "AbortError", "NetworkError", "StreamError",
    "InvalidToolCallError", "UnsupportedToolChoiceError", "NoObjectGeneratedError", "ConfigurationError",
]  # fmt: skip

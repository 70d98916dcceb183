"""The LLM error hierarchy (ULS section 6), rooted at ``aos.errors.AosError``.

``error_from_http`` is the one place an HTTP status and error body become a
typed error: status table first, then gRPC status strings (Gemini), then
message classification; ``raw`` keeps the decoded body.
"""

from __future__ import annotations

from typing import Any

from aos.errors import AosError


class SDKError(AosError):
    """Root of every LLM error."""

    code = "LLM"
    retryable = False

    def __init__(self, message: str = "", cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause
        if cause is not None:
            self.__cause__ = cause


class ProviderError(SDKError):
    code = "LLMProvider"

    def __init__(
        self,
        message: str = "",
        *,
        provider: str | None = None,
        status_code: int | None = None,
        error_code: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        raw: Any = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message, cause)
        self.provider = provider
        self.status_code = status_code
        self.error_code = error_code
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after
        self.raw = raw


class AuthenticationError(ProviderError):
    code = "LLMAuthentication"


class AccessDeniedError(ProviderError):
    code = "LLMAccessDenied"


class NotFoundError(ProviderError):
    code = "LLMNotFound"


class InvalidRequestError(ProviderError):
    code = "LLMInvalidRequest"


class RateLimitError(ProviderError):
    code = "LLMRateLimit"
    retryable = True


class ServerError(ProviderError):
    code = "LLMServer"
    retryable = True


class ContentFilterError(ProviderError):
    code = "LLMContentFilter"


class ContextLengthError(ProviderError):
    code = "LLMContextLength"


class QuotaExceededError(ProviderError):
    code = "LLMQuotaExceeded"


class UnknownProviderError(ProviderError):
    """A status the table does not know: retryable by default (ULS 6.3)."""

    code = "LLMUnknown"
    retryable = True


class RequestTimeoutError(SDKError):
    code = "LLMTimeout"


class AbortError(SDKError):
    code = "LLMAbort"


class NetworkError(SDKError):
    code = "LLMNetwork"
    retryable = True


class StreamError(SDKError):
    code = "LLMStream"
    retryable = True


class InvalidToolCallError(SDKError):
    code = "LLMInvalidToolCall"


class UnsupportedToolChoiceError(SDKError):
    code = "LLMUnsupportedToolChoice"


class NoObjectGeneratedError(SDKError):
    code = "LLMNoObjectGenerated"


class ConfigurationError(SDKError):
    code = "LLMConfiguration"


_BY_STATUS: dict[int, type[ProviderError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: AccessDeniedError,
    404: NotFoundError,
    413: ContextLengthError,
    422: InvalidRequestError,
    429: RateLimitError,
}

_BY_GRPC: dict[str, type[ProviderError]] = {
    "NOT_FOUND": NotFoundError,
    "INVALID_ARGUMENT": InvalidRequestError,
    "UNAUTHENTICATED": AuthenticationError,
    "PERMISSION_DENIED": AccessDeniedError,
    "RESOURCE_EXHAUSTED": RateLimitError,
    "UNAVAILABLE": ServerError,
    "INTERNAL": ServerError,
}

_BY_MESSAGE: list[tuple[tuple[str, ...], type[ProviderError]]] = [
    (("context length", "context_length", "too many tokens", "maximum context"), ContextLengthError),
    (("content filter", "content_filter", "safety"), ContentFilterError),
    (("quota",), QuotaExceededError),
    (("not found", "does not exist"), NotFoundError),
    (("unauthorized", "invalid key", "invalid api key", "invalid x-api-key", "api key not valid"), AuthenticationError),
]


def parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date; providers send seconds, so treat as absent


def error_from_http(
    provider: str, status: int, body: Any, headers: dict[str, str] | None = None, text: str = ""
) -> SDKError:
    """Translate one HTTP error response into the hierarchy (ULS 7.6)."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or text)
        code = err.get("code") if isinstance(err.get("code"), str) else None
        code = code or err.get("status") or err.get("type")
    else:
        message, code = (text or f"HTTP {status}"), None
    retry_after = parse_retry_after(headers.get("retry-after"))
    if status == 408:
        return RequestTimeoutError(message)
    cls: type[ProviderError] | None = _BY_STATUS.get(status)
    if cls is None and isinstance(code, str):
        cls = _BY_GRPC.get(code)
    if cls is None and 500 <= status <= 599:
        cls = ServerError
    if cls is None or cls is InvalidRequestError:
        lowered = message.lower()
        for needles, candidate in _BY_MESSAGE:
            if any(n in lowered for n in needles):
                cls = candidate
                break
    if cls is None:
        cls = UnknownProviderError
    return cls(
        message,
        provider=provider,
        status_code=status,
        error_code=code if isinstance(code, str) else None,
        retry_after=retry_after,
        raw=body if body is not None else text,
    )

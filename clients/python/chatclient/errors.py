"""One error type for everything the server refuses, over REST or the WebSocket."""

from __future__ import annotations

from typing import Any

# Codes for REST answers, whose bodies carry only {"detail"}: the HTTP status names the kind.
REST_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    429: "rate_limited",
}


class ChatError(Exception):
    """A refusal: ``code`` is the contract's error code (e.g. ``content_too_long``), ``detail`` the
    server's words. ``status`` is the HTTP status for REST answers (None for ``error`` frames)."""

    def __init__(
        self,
        code: str,
        detail: str = "",
        *,
        status: int | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.status = status
        self.retry_after = retry_after
        self.body = body

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> ChatError:
        """From an ``error`` frame."""
        return cls(
            str(frame.get("code")),
            str(frame.get("detail", "")),
            retry_after=frame.get("retry_after"),
            body=frame,
        )

    @classmethod
    def from_response(cls, status: int, body: Any, retry_after: float | None) -> ChatError:
        """From a REST answer of 400 or more; 5xx answers are ``unavailable`` (worth retrying)."""
        code = REST_CODES.get(status, "unavailable" if status >= 500 else f"http_{status}")
        detail = body.get("detail") if isinstance(body, dict) else None
        return cls(
            code,
            str(detail if detail is not None else body),
            status=status,
            retry_after=retry_after,
            body=body,
        )


class LoggedOut(ChatError):
    """The session is over: the refresh token was refused, or ``logout()`` was called."""

    def __init__(self, detail: str = "The session ended; log in again.") -> None:
        super().__init__("logged_out", detail)

"""Domain errors with stable codes, rendered once per interface.

Services raise these; the REST exception handler turns them into a status and
``{"detail"}`` or field-error body, and the WebSocket consumer turns them into
an ``error`` frame with the same ``code``.
"""

from __future__ import annotations

from django.db import DatabaseError, InterfaceError, OperationalError
from redis.exceptions import RedisError

from core import metrics


class ChatError(Exception):
    """A refusal a client can act on: a stable ``code`` and an HTTP status."""

    code = "invalid_message"
    http_status = 400

    def __init__(self, detail: str | list[str], *, field: str | None = None, code: str | None = None) -> None:
        self.messages = [detail] if isinstance(detail, str) else list(detail)
        self.detail = " ".join(self.messages)
        super().__init__(self.detail)
        self.field = field
        if code is not None:
            self.code = code

    def rest_body(self) -> dict:
        if self.field:
            return {self.field: self.messages}
        return {"detail": self.detail}


class InvalidInput(ChatError):
    code = "invalid_message"
    http_status = 400


class ContentEmpty(InvalidInput):
    code = "content_empty"


class ContentTooLong(InvalidInput):
    code = "content_too_long"


class OwnerCannotLeave(InvalidInput):
    code = "owner_cannot_leave"


class MessageDeleted(InvalidInput):
    code = "message_deleted"


class TooManyReactions(InvalidInput):
    code = "too_many_reactions"


class InvalidEmoji(InvalidInput):
    code = "invalid_emoji"


class KindNotAllowed(InvalidInput):
    """An action the channel's kind does not allow (joining or banning from a direct channel): 400."""

    code = "not_allowed"


class NotAllowed(ChatError):
    code = "not_allowed"
    http_status = 403


class MessageNotFound(ChatError):
    code = "message_not_found"
    http_status = 404


class NotAMember(ChatError):
    code = "not_a_member"
    http_status = 403


class Forbidden(ChatError):
    code = "forbidden"
    http_status = 403


class ChannelNotFound(ChatError):
    code = "channel_not_found"
    http_status = 404


class BanNotFound(ChatError):
    code = "not_found"
    http_status = 404


class UserNotFound(ChatError):
    code = "user_not_found"
    http_status = 404


class NotAuthenticated(ChatError):
    code = "not_authenticated"
    http_status = 401


class RateLimited(ChatError):
    """Every limit's refusal; making one counts it in ``chat_rate_limited_total{kind}``.

    ``kind`` names the limit (``message``, ``change``, ``login``...), as the metric shows it.
    """

    code = "rate_limited"
    http_status = 429

    def __init__(self, detail: str, *, retry_after: float, kind: str = "other") -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.kind = kind
        metrics.RATE_LIMITED.labels(kind=kind).inc()


class ServiceUnavailable(ChatError):
    code = "unavailable"
    http_status = 503


def as_chat_error(exc: BaseException) -> ChatError | None:
    """What a failure below the services means to a client; None for a bug (a 500 or ``internal_error``).

    The one mapping shared by the REST exception handler and the WebSocket
    gateway: an unreachable database or Redis is ``unavailable`` (503), and a
    row the database refuses is a request that could not be stored (400).
    """
    if isinstance(exc, ChatError):
        return exc
    if isinstance(exc, (OperationalError, InterfaceError, RedisError)):
        return ServiceUnavailable("The database is unavailable; try again shortly.")
    if isinstance(exc, DatabaseError):
        return InvalidInput("The request could not be stored.")
    return None

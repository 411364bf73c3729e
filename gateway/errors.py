"""The one mapping from exceptions to what a socket is told: an ``error`` frame or a close code.

Domain refusals (``ChatError``) keep their code; a database or Redis outage is
``unavailable`` (through ``core.errors.as_chat_error``, as REST maps it); any
other exception is a bug, logged, and answered ``internal_error``, never a 1011.
"""

from __future__ import annotations

import logging
from typing import Any

from core.errors import ChatError, RateLimited, ServiceUnavailable, as_chat_error
from gateway import protocol
from gateway.database import Refused
from realtime import frames

logger = logging.getLogger(__name__)


def refusal_for(exc: Exception) -> ChatError:
    """The client-facing refusal an exception raised while handling a frame stands for."""
    refusal = as_chat_error(exc)
    if refusal is None:
        logger.exception("frame handler failed", exc_info=exc)
        return ChatError("The server could not handle this frame.", code="internal_error")
    if refusal is not exc:
        logger.warning("frame refused: %s", exc)
    return refusal


def error_frame(exc: Exception, *, frame: dict[str, Any] | None = None, prefix: str = "") -> dict[str, Any]:
    """The ``error`` frame answering ``frame`` (its ``client_id`` echoed) that failed with ``exc``."""
    refusal = refusal_for(exc)
    return frames.error_frame(
        code=refusal.code,
        detail=f"{prefix}{refusal.detail}",
        client_id=protocol.echoed_client_id(frame),
        retry_after=refusal.retry_after if isinstance(refusal, RateLimited) else None,
    )


def handshake_close_code(exc: Exception) -> int:
    """The close code for a handshake that failed with ``exc``: the refusal's, or 1013 for an outage."""
    if isinstance(exc, Refused):
        return exc.code
    refusal = as_chat_error(exc)
    if refusal is not None and (refusal is not exc or isinstance(exc, ServiceUnavailable)):
        logger.warning("handshake refused: database or Redis unavailable (%s)", exc)
        return frames.CLOSE_TRY_AGAIN
    raise exc

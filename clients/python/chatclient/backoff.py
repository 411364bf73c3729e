"""When to reconnect: exponential backoff with full jitter, and what each close code means.

Full jitter (a delay drawn uniformly between 0 and the exponential cap) keeps
thousands of bots that lost the same server from coming back in one wave.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum


@dataclass
class Backoff:
    """``delay(attempt) = random() * min(max_delay, base_delay * 2 ** attempt)``, in seconds.

    ``random`` is any function returning a float in [0, 1): tests pass a
    seeded ``random.Random(...).random`` or a stub.
    """

    base_delay: float = 0.5
    max_delay: float = 30.0
    random: Callable[[], float] = field(default=random.random)

    def cap(self, attempt: int) -> float:
        """The upper bound of the delay before attempt ``attempt`` (0 for the first retry)."""
        return min(self.max_delay, self.base_delay * 2.0 ** min(attempt, 62))

    def delay(self, attempt: int) -> float:
        return self.random() * self.cap(attempt)


class CloseAction(Enum):
    """What the client does after a connection ends."""

    RECONNECT_NOW = "reconnect_now"  # 1001: the server is going away; another one may serve at once
    BACK_OFF = "back_off"  # 4429, 1013, a failed handshake, anything unexpected
    REFRESH = "refresh"  # 4401: the access token was refused; refresh it once, then reconnect
    STOP = "stop"  # 4403: this token is not this user's (or the user is inactive); retrying cannot help


CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN = 1013
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_MANY = 4429


def close_action(code: int | None) -> CloseAction:
    """The contract's meaning of a close code (None: the connection could not be opened)."""
    if code == CLOSE_FORBIDDEN:
        return CloseAction.STOP
    if code == CLOSE_UNAUTHORIZED:
        return CloseAction.REFRESH
    if code == CLOSE_GOING_AWAY:
        return CloseAction.RECONNECT_NOW
    return CloseAction.BACK_OFF

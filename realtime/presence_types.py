"""What both presence stores (``presence_store``, ``presence_redis``) answer with."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Opened:
    """A connection counted by ``open_as``."""

    count: int  # the user's open connections, this one included
    shown: bool  # its visibility was recorded; False: a status change began since the epoch given


def online_order(names: Iterable[str]) -> list[str]:
    """Names as ``ready``'s ``online`` lists them: sorted ignoring case, as every list of users is."""
    return sorted(names, key=str.lower)

"""Rates written as settings: ``10/h``, ``60/m``, ``5/10m`` (django-ratelimit's notation).

Free of Django's runtime on purpose: the settings module parses every
``CHAT_*_RATE`` with it at start-up, so a mistyped rate stops the server with
a clear message instead of failing on the first request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")


@dataclass(frozen=True)
class Rate:
    """``limit`` attempts per ``period`` seconds."""

    limit: int
    period: int


def parse_rate(text: str, *, name: str = "rate") -> Rate:
    """``"10/h"`` -> ``Rate(10, 3600)``, ``"5/10m"`` -> ``Rate(5, 600)``; else ImproperlyConfigured."""
    match = _RATE.match(text or "")
    if match is None or int(match[1]) < 1 or match[2].startswith("0"):
        raise ImproperlyConfigured(f"{name} must look like 10/h or 60/m (N/[k]s|m|h|d, N >= 1), got {text!r}")
    return Rate(limit=int(match[1]), period=int(match[2] or 1) * _UNITS[match[3]])

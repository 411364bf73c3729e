"""The client's address, the one rule used by rate limits and session records."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address_meta(request: HttpRequest) -> str:
    """Return the client address, trusting X-Forwarded-For only when configured.

    Behind a proxy every request would otherwise share the proxy's address,
    so one user could exhaust everyone's login limit.
    """
    if settings.CHAT_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def address_bucket(address: str) -> str:
    """The unit the address limits count: an IPv4 address, or an IPv6 address's /64.

    One IPv6 client usually holds a whole /64 (often far more), so counting per
    /128 would give it a fresh bucket per attempt. IPv4-mapped IPv6 addresses
    count as their IPv4 address; anything unparsable counts as itself.
    """
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_address_bucket(request: HttpRequest) -> str:
    """The caller's rate-limit bucket: :func:`address_bucket` of :func:`client_address_meta`."""
    return address_bucket(client_address_meta(request))

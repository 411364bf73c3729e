"""System checks on the account settings (``manage.py check``, and at server start)."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

MIN_SIGNING_KEY_BYTES = 32


@checks.register(checks.Tags.security, "chat")
def jwt_signing_key_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """chat.E001: with DEBUG off, the JWT signing key must be at least 32 bytes.

    HS256 with a short key can be brute-forced offline from any one token,
    and whoever finds the key can sign tokens for every user. The key is
    ``CHAT_JWT_SIGNING_KEY``, or ``SECRET_KEY`` when that is unset.
    """
    if settings.DEBUG:
        return []
    key = settings.SIMPLE_JWT.get("SIGNING_KEY") or ""
    size = len(key.encode() if isinstance(key, str) else key)
    if size >= MIN_SIGNING_KEY_BYTES:
        return []
    return [
        checks.Error(
            f"The JWT signing key is {size} bytes; with DEBUG off it needs {MIN_SIGNING_KEY_BYTES} or more.",
            hint="Set CHAT_JWT_SIGNING_KEY (or SECRET_KEY, used when it is unset) to a random string "
            "of 32 bytes or more, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`.",
            id="chat.E001",
        )
    ]

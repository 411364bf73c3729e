"""Moderation tests drive the admin's pages (``admin_client``, ``superuser`` in tests/conftest.py)
and watch real sockets: the gateway's socket fixtures."""

from __future__ import annotations

from tests.gateway.conftest import fresh_layer_and_presence, ws_connect  # noqa: F401  (fixtures)

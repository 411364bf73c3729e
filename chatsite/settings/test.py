"""Test settings: the base settings with only what tests need changed."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")

from chatsite.settings.base import *  # noqa: E402,F403
from chatsite.settings.base import PASSWORD_HASHERS  # noqa: E402

# bcrypt's cost would dominate the suite; one test asserts that the base
# settings put bcrypt first.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]

# Generous limits so the suite's own traffic is never throttled; the tests of
# the limits themselves override these.
CHAT_LOGIN_RATE = os.environ.get("CHAT_LOGIN_RATE", "10000/m")
CHAT_REGISTER_RATE = os.environ.get("CHAT_REGISTER_RATE", "10000/m")
CHAT_LOGIN_FAILURE_RATE = os.environ.get("CHAT_LOGIN_FAILURE_RATE", "10000/m")
CHAT_LOGIN_USERNAME_RATE = os.environ.get("CHAT_LOGIN_USERNAME_RATE", "10000/m")
CHAT_ADMIN_LOGIN_RATE = os.environ.get("CHAT_ADMIN_LOGIN_RATE", "10000/m")
CHAT_PROFILE_RATE = os.environ.get("CHAT_PROFILE_RATE", "10000/m")
CHAT_MESSAGE_BURST = int(os.environ.get("CHAT_MESSAGE_BURST", "100000"))
CHAT_MESSAGE_RATE = float(os.environ.get("CHAT_MESSAGE_RATE", "100000"))
CHAT_CHANNEL_CREATE_RATE = os.environ.get("CHAT_CHANNEL_CREATE_RATE", "100000/m")
CHAT_MEMBERSHIP_RATE = os.environ.get("CHAT_MEMBERSHIP_RATE", "100000/m")
CHAT_READ_RATE = os.environ.get("CHAT_READ_RATE", "100000/m")
CHAT_CONNECT_RATE = os.environ.get("CHAT_CONNECT_RATE", "100000/m")

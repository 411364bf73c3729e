"""Settings for every environment, driven by environment variables.

Production differs from development only through the environment: with no
configuration the server runs embedded (SQLite, in-process channel layer,
local-memory cache); ``DATABASE_URL`` and ``REDIS_URL`` scale it out.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from core.rates import parse_rate

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = Path(os.environ.get("CHAT_DATA_DIR", BASE_DIR / "data"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        return float(value) if value.strip() else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from exc


def env_rate(name: str, default: str) -> str:
    """A rate like ``10/h`` (``N/[k]s|m|h|d``), checked now so a typo stops the start."""
    value = os.environ.get(name, "").strip() or default
    parse_rate(value, name=name)
    return value


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def development_secret_key() -> str:
    """Keep one generated key per checkout so tokens survive restarts in development."""
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


DEBUG = env_bool("DEBUG")
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = development_secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "accounts",
    "chatrooms",
    "messaging",
    "web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------

DATABASE_URL = os.environ.get("DATABASE_URL", "")


def sqlite_database(path: Path | str) -> dict:
    """SQLite tuned for a chat server, from ``DATABASE_URL=sqlite:///...`` or by default."""
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # Keep the connection: reopening it (and re-running the PRAGMAs)
        # after every database step cost a fifth of a message's time.
        "CONN_MAX_AGE": None,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            # IMMEDIATE takes the write lock at BEGIN, so concurrent writers
            # queue on the timeout instead of failing with "database is locked".
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA busy_timeout=20000;",
        },
    }


if DATABASE_URL and not DATABASE_URL.startswith("sqlite:"):
    # Under ASGI every HTTP request runs its sync code in a thread of its own,
    # so a persistent (per-thread) connection outlives its thread and leaks
    # until PostgreSQL refuses new clients. Each process therefore shares a
    # pool (psycopg-pool) of at most CHAT_DB_POOL_SIZE connections; with 0,
    # connections last one request (CHAT_DB_CONN_MAX_AGE) and no pool is used.
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("CHAT_DB_CONN_MAX_AGE", 0),
            conn_health_checks=True,
        )
    }
    CHAT_DB_POOL_SIZE = env_int("CHAT_DB_POOL_SIZE", 10)
    if CHAT_DB_POOL_SIZE > 0 and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # With conn_health_checks on, Django makes the pool check each
        # connection it hands out, so none is dead after a database restart.
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django requires it with a pool
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(2, CHAT_DB_POOL_SIZE),
            "max_size": CHAT_DB_POOL_SIZE,
            "timeout": env_float("CHAT_DB_POOL_TIMEOUT", 10.0),
        }
else:
    if DATABASE_URL:
        sqlite_path = dj_database_url.parse(DATABASE_URL)["NAME"]
    else:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        sqlite_path = DATA_DIR / "db.sqlite3"
    DATABASES = {"default": sqlite_database(sqlite_path)}

# --- Cache, channel layer ---------------------------------------------------

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "chat",
            # Fail fast rather than hang a request when Redis is away.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    # CHAT_CHANNEL_LAYER picks the channels-redis layer: "pubsub" (the default,
    # Redis PUBLISH/SUBSCRIBE) or "core" (RedisChannelLayer: lists and sorted
    # sets); docs/deploy.md ("Channel layers") has the measurements behind the
    # default. Either way each process is one layer member (realtime.hub).
    CHAT_CHANNEL_LAYER = os.environ.get("CHAT_CHANNEL_LAYER", "pubsub").strip().lower() or "pubsub"
    if CHAT_CHANNEL_LAYER == "pubsub":
        CHANNEL_LAYERS = {
            "default": {
                # channels-redis's pubsub layer, publishing a batch in one round trip.
                "BACKEND": "realtime.layers.PubSubLayer",
                "CONFIG": {"hosts": [REDIS_URL], "prefix": "chat"},
            }
        }
    elif CHAT_CHANNEL_LAYER == "core":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    # A socket timeout above the layer's 5 s blocking pop, a
                    # pool above its default 100, and room for bursts in the
                    # hub's one channel per process (see pitfalls of defaults).
                    "hosts": [{"address": REDIS_URL, "socket_timeout": 10, "max_connections": 1000}],
                    "prefix": "chat",
                    "capacity": 5000,
                    "expiry": 60,
                },
            }
        }
    else:
        raise ImproperlyConfigured(f"CHAT_CHANNEL_LAYER must be pubsub or core, got {CHAT_CHANNEL_LAYER!r}")
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "realtime.layers.LocalChannelLayer"}}
    # One process shares its local-memory cache with itself, which is all the
    # embedded mode needs; REDIS_URL gives the rate limits a shared cache.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

# Presence (connection counts) expires unless renewed: each process renews its
# connections and sweeps dead processes' every CHAT_HOUSEKEEPING_SECONDS, and
# an entry lives CHAT_PRESENCE_TTL seconds after its last renewal, so a dead
# process's users go offline within TTL + interval (60 s by default).
CHAT_PRESENCE_TTL_SECONDS = env_float("CHAT_PRESENCE_TTL", 45.0)
CHAT_HOUSEKEEPING_SECONDS = env_float("CHAT_HOUSEKEEPING_SECONDS", 15.0)
if not 0 < 2 * CHAT_HOUSEKEEPING_SECONDS <= CHAT_PRESENCE_TTL_SECONDS:
    raise ImproperlyConfigured(
        "CHAT_PRESENCE_TTL must be at least twice CHAT_HOUSEKEEPING_SECONDS"
        " (one missed heartbeat is not a death)."
    )

# A serving process checkpoints SQLite's write-ahead log every this many
# seconds from a thread of its own instead of inside a commit (core.sqlite_wal);
# 0 leaves it to SQLite, in the commit that takes the log past 1,000 pages.
CHAT_SQLITE_CHECKPOINT_SECONDS = env_float("CHAT_SQLITE_CHECKPOINT_SECONDS", 1.0)
if CHAT_SQLITE_CHECKPOINT_SECONDS < 0:
    raise ImproperlyConfigured("CHAT_SQLITE_CHECKPOINT_SECONDS must be 0 (off) or more")

# --- Passwords --------------------------------------------------------------

PASSWORD_HASHERS = [
    # Pre-hashes with SHA-256, so passwords over bcrypt's 72 bytes are safe.
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation, static files -------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves from the apps (below) and warns on every start when this
# folder, which only collectstatic fills, does not exist.
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve static files straight from the apps, so the admin and /api/docs/ work
# without a collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# The client library's TypeScript declarations (chat/chat-client.d.ts) are text, not MPEG video.
WHITENOISE_MIMETYPES = {".ts": "text/plain"}

# --- REST framework, JWT, OpenAPI -------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.SessionTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        # The API reads JSON only: a form or multipart body is refused (400
        # saying to send application/json; the contract has no 415).
        "core.parsers.OrjsonParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["core.renderers.OrjsonRenderer"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.LimitPagination",
    "EXCEPTION_HANDLER": "core.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

CHAT_ACCESS_TOKEN_SECONDS = env_int("CHAT_ACCESS_TOKEN_SECONDS", 900)
CHAT_REFRESH_TOKEN_SECONDS = env_int("CHAT_REFRESH_TOKEN_SECONDS", 604800)
# A login session's absolute lifetime: refreshing never extends it past this
# many seconds after the login (both tokens' expiry are capped at its end).
CHAT_SESSION_MAX_SECONDS = env_int("CHAT_SESSION_MAX_SECONDS", 30 * 24 * 3600)
if CHAT_SESSION_MAX_SECONDS <= 0:
    raise ImproperlyConfigured("CHAT_SESSION_MAX_SECONDS must be positive.")

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=CHAT_ACCESS_TOKEN_SECONDS),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=CHAT_REFRESH_TOKEN_SECONDS),
    "ALGORITHM": "HS256",
    "SIGNING_KEY": os.environ.get("CHAT_JWT_SIGNING_KEY", "") or SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "UPDATE_LAST_LOGIN": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Chat API",
    "DESCRIPTION": "REST half of the chat backend; the WebSocket is described in docs/websocket.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- CORS -------------------------------------------------------------------

CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_METHODS = ["GET", "POST", "PATCH", "DELETE", "OPTIONS"]
CORS_ALLOW_HEADERS = ["authorization", "content-type"]
CORS_EXPOSE_HEADERS = ["Retry-After"]
CORS_URLS_REGEX = r"^/api/.*$"

# --- Chat limits ------------------------------------------------------------

CHAT_LOGIN_RATE = os.environ.get("CHAT_LOGIN_RATE", "10/m")
CHAT_REGISTER_RATE = os.environ.get("CHAT_REGISTER_RATE", "20/h")
# Failed logins per (username, client address) pair: the tight limit on guessing.
CHAT_LOGIN_FAILURE_RATE = os.environ.get("CHAT_LOGIN_FAILURE_RATE", "5/5m")
# Failed logins per username from every address: past it, logins from
# addresses this user has not logged in from recently wait out the (short)
# window; it only delays, and never the user's own known addresses.
CHAT_LOGIN_USERNAME_RATE = os.environ.get("CHAT_LOGIN_USERNAME_RATE", "20/m")
# POSTs to /admin/login/ per client address (plus the two failure limits above).
CHAT_ADMIN_LOGIN_RATE = os.environ.get("CHAT_ADMIN_LOGIN_RATE", "10/m")
# PATCH /api/users/me per user (each checks a bcrypt hash).
CHAT_PROFILE_RATE = os.environ.get("CHAT_PROFILE_RATE", "5/m")
CHAT_MESSAGE_BURST = env_int("CHAT_MESSAGE_BURST", 20)
CHAT_MESSAGE_RATE = env_float("CHAT_MESSAGE_RATE", 5.0)
CHAT_MAX_CONNECTIONS_PER_USER = env_int("CHAT_MAX_CONNECTIONS_PER_USER", 10)
# Per-user limits, counted across processes (core.userlimits; docs/security.md).
CHAT_CHANNEL_CREATE_RATE = env_rate("CHAT_CHANNEL_CREATE_RATE", "10/h")
CHAT_MEMBERSHIP_RATE = env_rate("CHAT_MEMBERSHIP_RATE", "60/m")
CHAT_READ_RATE = env_rate("CHAT_READ_RATE", "120/m")
CHAT_CONNECT_RATE = env_rate("CHAT_CONNECT_RATE", "60/m")
# Messages one ``sync`` frame sends per channel before ``has_more``.
CHAT_SYNC_MAX = env_int("CHAT_SYNC_MAX", 5000)
# Threads that read sync pages, apart from the one thread every handshake and
# send shares (gateway.database.bulk_db); on PostgreSQL they use the pool.
CHAT_SYNC_THREADS = env_int("CHAT_SYNC_THREADS", 2)
if CHAT_SYNC_THREADS < 1:
    raise ImproperlyConfigured("CHAT_SYNC_THREADS must be at least 1")
# Trust X-Forwarded-For for the client address only behind a known proxy.
CHAT_TRUST_X_FORWARDED_FOR = env_bool("CHAT_TRUST_X_FORWARDED_FOR")

# --- Production hardening ---------------------------------------------------

SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("CHAT_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env_int("CHAT_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
if env_bool("CHAT_BEHIND_TLS_PROXY"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Logs and metrics ---------------------------------------------------------

# GET /metrics answers only requests carrying "Authorization: Bearer <this>";
# unset, the route is a 404 like any unknown path (core/metrics_view.py).
CHAT_METRICS_TOKEN = os.environ.get("CHAT_METRICS_TOKEN", "").strip()

# Every log line, Django's and uvicorn's, goes through one handler whose
# filter scrubs tokens (core/logs.py); CHAT_LOG_FORMAT=json writes one JSON
# object per line. uvicorn's loggers are taken over here (Django configures
# logging after uvicorn has), keeping the level bin/server gave them; its
# access log only when bin/server turned it on (CHAT_ACCESS_LOG, read alike).
CHAT_LOG_FORMAT = os.environ.get("CHAT_LOG_FORMAT", "text").strip().lower() or "text"
if CHAT_LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"CHAT_LOG_FORMAT must be text or json, got {CHAT_LOG_FORMAT!r}")
CHAT_ACCESS_LOG = env_bool("CHAT_ACCESS_LOG")

_log_filters = ["redact_tokens"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_tokens": {"()": "core.logs.RedactTokens"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "core.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": CHAT_LOG_FORMAT,
            "filters": _log_filters,
        }
    },
    "root": {
        "handlers": ["console"],
        "level": os.environ.get("CHAT_LOG_LEVEL", "INFO"),
        "filters": _log_filters,
    },
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "uvicorn": {"handlers": ["console"], "propagate": False, "filters": _log_filters},
        "uvicorn.error": {"filters": _log_filters},
        # Access lines are INFO records: with the access log on they are
        # written whatever level bin/server gave uvicorn's own messages.
        "uvicorn.access": {
            "handlers": ["console"] if CHAT_ACCESS_LOG else [],
            "propagate": False,
            "filters": _log_filters,
            **({"level": "INFO"} if CHAT_ACCESS_LOG else {}),
        },
    },
}

"""The base (production) settings, checked in fresh processes so test settings cannot mask them."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "PYTEST_", "CHAT_", "CORS_"))
        and k not in {"SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL"}
    }
    env.update(DJANGO_SETTINGS_MODULE="chatsite.settings.base", CHAT_DATA_DIR=str(tmp_path))
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_base_settings_hash_passwords_with_bcrypt_first(tmp_path):
    code = "from chatsite.settings import base; print(base.PASSWORD_HASHERS[0])"
    result = run(["-c", code], base_env(tmp_path, SECRET_KEY="x" * 64))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "django.contrib.auth.hashers.BCryptSHA256PasswordHasher"


def test_missing_secret_key_with_debug_off_refuses_to_start(tmp_path):
    result = run(["-c", "import chatsite.settings.base"], base_env(tmp_path))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr


def test_debug_without_secret_key_generates_one_and_keeps_it(tmp_path):
    code = "from chatsite.settings import base; print(base.SECRET_KEY)"
    first = run(["-c", code], base_env(tmp_path, DEBUG="1"))
    second = run(["-c", code], base_env(tmp_path, DEBUG="1"))
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.strip()) >= 50
    assert first.stdout == second.stdout
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_lifetimes_and_limits_come_from_the_environment(tmp_path):
    code = (
        "from chatsite.settings import base as b; "
        "print(b.SIMPLE_JWT['ACCESS_TOKEN_LIFETIME'].total_seconds(), "
        "b.SIMPLE_JWT['REFRESH_TOKEN_LIFETIME'].total_seconds(), b.CHAT_LOGIN_RATE, "
        "b.CHAT_REGISTER_RATE, b.CORS_ALLOWED_ORIGINS, b.DEBUG, b.ALLOWED_HOSTS)"
    )
    defaults = run(["-c", code], base_env(tmp_path, SECRET_KEY="x" * 64))
    assert defaults.stdout.strip() == (
        "900.0 604800.0 10/m 20/h [] False ['localhost', '127.0.0.1', '[::1]']"
    )
    env = base_env(
        tmp_path,
        SECRET_KEY="x" * 64,
        CHAT_ACCESS_TOKEN_SECONDS="60",
        CHAT_REFRESH_TOKEN_SECONDS="3600",
        CHAT_LOGIN_RATE="5/m",
        CHAT_REGISTER_RATE="2/h",
        CORS_ALLOWED_ORIGINS="https://a.example.com, https://b.example.com",
        ALLOWED_HOSTS="chat.example.com",
    )
    configured = run(["-c", code], env)
    assert configured.stdout.strip() == (
        "60.0 3600.0 5/m 2/h ['https://a.example.com', 'https://b.example.com'] False ['chat.example.com']"
    )


def test_bad_integer_setting_is_a_clear_error(tmp_path):
    env = base_env(tmp_path, SECRET_KEY="x" * 64, CHAT_ACCESS_TOKEN_SECONDS="soon")
    result = run(["-c", "import chatsite.settings.base"], env)
    assert result.returncode != 0
    assert "CHAT_ACCESS_TOKEN_SECONDS" in result.stderr


def test_sync_threads_must_be_at_least_one(tmp_path):
    env = base_env(tmp_path, SECRET_KEY="x" * 64, CHAT_SYNC_THREADS="0")
    result = run(["-c", "import chatsite.settings.base"], env)
    assert result.returncode != 0
    assert "CHAT_SYNC_THREADS must be at least 1" in result.stderr


def test_check_deploy_is_clean_with_production_values(tmp_path):
    env = base_env(
        tmp_path,
        SECRET_KEY=secrets.token_urlsafe(64),
        CHAT_SSL_REDIRECT="1",
        CHAT_HSTS_SECONDS="31536000",
        ALLOWED_HOSTS="chat.example.com",
    )
    result = run(["manage.py", "check", "--deploy"], env)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in output, output


@pytest.mark.parametrize("hasher_first", ["django.contrib.auth.hashers.BCryptSHA256PasswordHasher"])
def test_a_user_created_under_base_hashers_is_stored_with_bcrypt(db, settings, hasher_first):
    from accounts import services
    from tests.conftest import DEFAULT_PASSWORD

    settings.PASSWORD_HASHERS = [hasher_first, "django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user = services.user_register(username="ada", email="ada@example.com", password=DEFAULT_PASSWORD)
    assert user.password.startswith("bcrypt_sha256$")
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


def test_log_format_defaults_to_text_and_refuses_unknown_values(tmp_path):
    code = "from chatsite.settings import base; print(base.LOGGING['handlers']['console']['formatter'])"
    assert run(["-c", code], base_env(tmp_path, SECRET_KEY="x" * 64)).stdout.strip() == "text"
    json_env = base_env(tmp_path, SECRET_KEY="x" * 64, CHAT_LOG_FORMAT="JSON")
    assert run(["-c", code], json_env).stdout.strip() == "json"
    result = run(["-c", code], base_env(tmp_path, SECRET_KEY="x" * 64, CHAT_LOG_FORMAT="xml"))
    assert result.returncode != 0 and "CHAT_LOG_FORMAT" in result.stderr

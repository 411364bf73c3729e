"""Liveness and readiness probes."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import OperationalError


def test_health_needs_no_token_and_no_database(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_ready_checks_the_database(client):
    response = client.get("/api/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"


@pytest.mark.django_db
def test_ready_is_503_with_a_reason_when_the_database_fails(client):
    with mock.patch("core.health.connection.cursor", side_effect=OperationalError("connection refused")):
        response = client.get("/api/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"] == "unavailable"
    assert "database" in body["detail"]
    # still answers health
    assert client.get("/api/health").status_code == 200


@pytest.mark.django_db
def test_ready_reports_redis_when_configured(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/api/ready")
    assert response.status_code == 503
    assert response.json()["redis"] == "unavailable"
    assert response.json()["database"] == "ok"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_schema_and_docs_need_no_token(client, path):
    assert client.get(path).status_code == 200


@pytest.mark.django_db
def test_schema_describes_the_bearer_scheme(client):
    schema = client.get("/api/schema/?format=json").json()
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"

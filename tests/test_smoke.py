import pytest


@pytest.mark.e2e
def test_real_server_answers_health(live_server_proc):
    import requests

    assert requests.get(f"{live_server_proc.base_url}/api/health", timeout=5).json() == {"status": "ok"}

"""The viewer is a local app and stays one: other host names and oversized bodies are refused."""

from __future__ import annotations

from dash_viewer.app import MAX_REQUEST_BYTES, create_app


def test_a_foreign_host_name_is_refused_loopback_names_are_served(tmp_path):
    client = create_app(tmp_path / "store", run_lookup=False, warm=False).server.test_client()
    assert client.get("/", headers={"Host": "127.0.0.1:8050"}).status_code == 200
    assert client.get("/", headers={"Host": "localhost:8050"}).status_code == 200
    assert client.get("/", headers={"Host": "[::1]:8050"}).status_code == 200
    assert client.get("/", headers={"Host": "attacker.example:8050"}).status_code == 403
    assert client.get("/thumb/x/1", headers={"Host": "attacker.example"}).status_code == 403


def test_an_oversized_request_body_is_refused_unread(tmp_path):
    client = create_app(tmp_path / "store", run_lookup=False, warm=False).server.test_client()
    body = b"x" * (MAX_REQUEST_BYTES + 1)
    answer = client.post(
        "/_dash-update-component", data=body, headers={"Host": "127.0.0.1", "Content-Type": "application/json"}
    )
    assert answer.status_code == 413


def test_a_bind_to_another_interface_accepts_its_host_names(tmp_path):
    client = create_app(tmp_path / "store", run_lookup=False, warm=False, allowed_hosts=None).server.test_client()
    assert client.get("/", headers={"Host": "photos.lan:8050"}).status_code == 200

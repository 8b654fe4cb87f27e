"""What the security and route tests share: the real app (`server.create_app`) on a TestClient that talks to it
as a browser on a team server would (a non-localhost Host), gradio's login form, and gradio event calls."""

from __future__ import annotations

import contextlib
import json

from app_support import PASSWORD

HOST = "labels.example"  # not localhost: gradio trusted any origin for such a Host
OWN = f"http://{HOST}"
EVIL = "http://evil.example"


@contextlib.contextmanager
def browser_client(scheme: str = "http", **create_kwargs):
    """A TestClient over a fresh `create_app(**create_kwargs)` reached at `scheme://labels.example`."""
    from fastapi.testclient import TestClient

    from labeling_app.server import create_app

    with TestClient(create_app(**create_kwargs), base_url=f"{scheme}://{HOST}", raise_server_exceptions=False) as c:
        yield c


def ui_login(client, name: str, password: str = PASSWORD, origin: str = OWN):
    """gradio's login form, as the page posts it; the client keeps the session cookies. Returns the response."""
    client.cookies.clear()
    return client.post("/login", data={"username": name, "password": password}, headers={"Origin": origin})


def api_login(client, name: str, password: str = PASSWORD) -> dict:
    r = client.post("/api/login", json={"name": name, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def gradio_call(client, api_name: str, data: list, origin: str | None = OWN):
    """POST /gradio_api/call/NAME then read its result stream: (status of the POST, event, payload or None)."""
    headers = {"Origin": origin} if origin else {}
    r = client.post(f"/gradio_api/call/{api_name}", json={"data": data}, headers=headers)
    if r.status_code != 200:
        return r.status_code, None, r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text
    stream = client.get(f"/gradio_api/call/{api_name}/{r.json()['event_id']}")
    event, payload = None, None
    for line in stream.text.splitlines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event in ("complete", "error"):
            payload = json.loads(line[6:])
    return r.status_code, event, payload

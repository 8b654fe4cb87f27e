"""The server: the Gradio UI at / and the JSON API under /api on one FastAPI app, one login (the users table).

`create_app` builds it (tests drive it with a TestClient); `launch` serves it with uvicorn.
"""

from __future__ import annotations

import secrets

import gradio as gr

from labeling_app import app as app_layout
from labeling_app import render
from labeling_app.auth import check_login_async


def create_app(concurrency: int = 16):
    """FastAPI app: the JSON API under /api and the Gradio UI at /, one login (the users table)."""
    from fastapi import FastAPI

    from labeling_app import api, queue
    from rlhf.data.store import session_scope

    with session_scope() as db:  # migrate the store and build the queue before the first request
        queue.sync_items(db)
    app = FastAPI(title="RLHF labeling app", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.api_secret = secrets.token_bytes(32)  # API tokens die with the process
    app.include_router(api.router)
    demo = app_layout.build_ui().queue(default_concurrency_limit=concurrency)
    return gr.mount_gradio_app(app, demo, path="/", auth=check_login_async, css=render.CSS, head=render.KEYBOARD_JS,
                               auth_message="Log in with the account an admin made for you (<code>rlhf users add</code>).",
                               footer_links=[], show_error=True)


def launch(host: str = "127.0.0.1", port: int = 7860, log_level: str = "warning") -> None:
    import uvicorn

    app = create_app()
    print(f"labeling app on http://{host}:{port}  (JSON API under /api; add people with `rlhf users add NAME --role R`)")
    # keep-alive longer than uvicorn's 5 s: a browser or client reusing a connection the server just closed gets a reset
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=30)

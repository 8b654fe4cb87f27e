"""The server: the Gradio UI at / and the JSON API under /api on one FastAPI app, one login (the users table).

`create_app` builds it (tests drive it with a TestClient); `launch` serves it with uvicorn. What makes
it safe on a network (origins, cookies, sizes, error references) is `security.Guard` in front of
both; logins, sessions and the login/logout pages are `sessions.py`.
"""

from __future__ import annotations

import logging
import secrets
from typing import Sequence

import gradio as gr

from labeling_app import app as app_layout
from labeling_app import render, security, sessions

AUTH_MESSAGE = "Log in with the account an admin made for you (<code>rlhf users add</code>)."


def create_app(concurrency: int = 16, allowed_origins: Sequence[str] = (), max_upload_mb: int | None = None,
               guard: sessions.LoginGuard | None = None):
    """FastAPI app: the JSON API under /api and the Gradio UI at /, one login (the users table).

    `allowed_origins`: origins besides the app's own whose pages may send requests (with
    `RLHF_ALLOWED_ORIGINS`); `max_upload_mb`: the largest upload (default `RLHF_MAX_UPLOAD_MB` or 64).
    """
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.middleware.cors import CORSMiddleware

    from labeling_app import api, queue
    from rlhf.data.store import session_scope

    config = security.Config.from_env(list(allowed_origins), max_upload_mb)
    with session_scope() as db:  # migrate the store and build the queue before the first request
        queue.sync_items(db)
    app = FastAPI(title="RLHF labeling app", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.api_secret = secrets.token_bytes(32)  # API tokens die with the process
    app.state.sessions = login_state = sessions.Sessions(guard)
    app.include_router(api.router)
    login_state.add_routes(app, AUTH_MESSAGE)  # before gradio's mount: these paths are ours

    @app.exception_handler(RequestValidationError)
    async def one_line_400(_request, exc: RequestValidationError):
        return JSONResponse({"detail": api.validation_message(exc)}, status_code=400)

    demo = app_layout.build_ui().queue(default_concurrency_limit=concurrency)
    gr.mount_gradio_app(app, demo, path="/", auth=login_state.gradio_auth, auth_message=AUTH_MESSAGE, css=render.CSS,
                        head=render.KEYBOARD_JS, footer_links=[], show_error=False, run_history=False,
                        max_file_size=config.max_upload_bytes)
    login_state.attach(_gradio_app(app))
    # CORS for the configured origins only; its presence also turns gradio's own origin-echoing CORS off
    app.add_middleware(CORSMiddleware, allow_origins=list(config.allowed_origins), allow_credentials=True,
                       allow_methods=["GET", "POST"], allow_headers=["authorization", "content-type"])
    app.add_middleware(security.Guard, config=config, sessions=login_state)  # outermost: before anything runs
    return app


def _gradio_app(app):
    from gradio.routes import App

    for route in app.routes:
        if isinstance(getattr(route, "app", None), App):
            return route.app
    raise RuntimeError("gradio is not mounted")  # a programming error, never a user's


def launch(host: str = "127.0.0.1", port: int = 7860, log_level: str = "warning",
           allowed_origins: Sequence[str] = ()) -> None:
    import uvicorn

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(allowed_origins=allowed_origins)
    print(f"labeling app on http://{host}:{port}  (JSON API under /api; add people with `rlhf users add NAME --role R`)")
    # keep-alive longer than uvicorn's 5 s: a browser or client reusing a connection the server just closed gets a reset
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=30)

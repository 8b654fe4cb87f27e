"""The labeling app: annotators write demonstrations and rank candidates; experts review; admins run the project.

Handlers (plain functions `(session, inputs) -> view`, role-checked, tested without a server):
- `handlers.py`        write and rank
- `history.py`         undo, previous item, my items, corrections as new versions, pace
- `review_handlers.py` the experts' review queue, agreement dashboard, adjudication, blind A/B
- `admin.py`           imports, candidate generation (a background job), users, snapshots, settings, counts
- `queue.py`           which item comes next: overlap N, no repeats, no ranking your own answer, uncertainty
                       priorities with an exploration share, gold items at gold_rate
- `settings.py`        the project settings (defaults, checks; re-exported by queue.py)
- `feedback.py`        after a submit only: the RM's order, the consensus, the running agreement

Layout (gradio; one "# Register listeners" block each):
- `app.py`           the annotator tabs: Write, Rank, My items (`build_ui`)
- `admin_layout.py`  the Admin tab
- `keyboard.py`      the page script: keys, checks before submit, session end
- `server.py`        the server (`create_app`: UI + JSON API on one FastAPI app), `launch`
- `review_layout.py` the experts' tabs, added by `build_ui` after the others
- `listeners.py`     the one listener wrapper: the caller from the login, people-facing errors as gr.Error
- `slots.py`         K candidate answers with a rank radio each (Rank and Adjudicate pages)
- `render.py`        escaped HTML of conversations and candidates; CSS; keyboard shortcuts

The rest:
- `auth.py`     login (users table, argon2) for gradio and the API; API tokens carrying the session version
- `security.py` the one ASGI guard: allowed origins only on state-changing routes, body limits per route kind,
                Lax/HttpOnly cookies, login before the app, unexpected errors logged under a reference id
- `sessions.py` throttled logins (per account and address, backoff, two password checks at a time), gradio
                sessions that end when the user's session version moves, the login form and POST logout
- `api.py`      the JSON API (`/api/...`) used by scripts and `bench/app_load.py`
- `state.py`    the small per-tab session state
- `serve.py`    the app as a subprocess on a free loopback port (browser tests, load bench)

Imports `rlhf`, never `stages`.
"""

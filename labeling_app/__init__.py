"""The labeling app: annotators write demonstrations and rank candidates; admins run the project.

- `app.py`      layout (`build_ui`), server (`create_app`: Gradio UI + JSON API), `launch`
- `handlers.py` every action as a plain function `(session, inputs) -> view`, role-checked
- `queue.py`    which item comes next: overlap N, no repeats, no ranking your own answer
- `auth.py`     login (users table, argon2) and role checks; API tokens
- `api.py`      the JSON API (`/api/...`) used by scripts and `bench/app_load.py`
- `render.py`   escaped HTML of conversations and candidates; CSS; keyboard shortcuts
- `state.py`    the small per-tab session state
- `review_pages.py` the experts' pages (issue 6), laid out by `build_ui` after the annotator tabs

Imports `rlhf`, never `stages`.
"""

"""The SQL store: SQLAlchemy models (`models`: the core tables and `Base`; `review_models`, `app_models`,
`job_models`, `loop_models`: the tables of review, the app, background jobs and the closed loop), engine + sessions
+ migrations (`db`). Every table module is imported here, so `Base.metadata` knows every table whichever module a
caller imports first."""

from rlhf.data.store import app_models, job_models, loop_models, review_models  # noqa: F401
from rlhf.data.store.db import open_store, session_scope  # noqa: F401

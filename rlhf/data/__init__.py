"""rlhf.data: what a team records and freezes. Imports nothing from rlhf.train or rlhf.review.

- `store/`      SQLAlchemy models, engine and sessions, Alembic migrations (`session_scope`)
- `formats`     the JSONL interchange formats and their field checks (FILE:LINE: FIELD errors)
- `records`     the one writer per row kind: prompts, demonstrations, responses, rankings, users
- `ingest`      every import (all or nothing) through `records`: our JSONL, and other tools' exports (`import_foreign`)
- `accounts`    users, argon2 passwords, roles and the one role check (`require`)
- `pairs`       rankings -> preference pairs, prompt-disjoint splits
- `snapshots`   the dataset builders (prompts, sft, preferences)
- `registry`    dataset versions (content-hashed snapshots) and model versions; model references
- `jobs`        background jobs (candidate generation, queue priorities) with their status in the store
- `gold`        gold items (`mark_gold`) and annotator quality (gold accuracy, agreement with consensus)
- `priorities`  the reward model's uncertainty per rank item (`item_priorities`), read by the app's queue
- `export`      registry versions as JSONL / Parquet / `datasets` folders in trl's shapes, with a dataset card
- `interop`, `annotation_tools`  readers and checks of trl-shaped datasets (public preference sets), Label Studio and Argilla exports
"""

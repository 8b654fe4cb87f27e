"""What PostgreSQL enforces and SQLite does not: column sizes and NUL characters. Every text that enters is checked
where it enters, with a one-line error naming the field, on both databases (`database`), before the server would
refuse it with a driver traceback. Also: the URL forms a team writes, and the PostgreSQL store itself."""

from __future__ import annotations

import pytest
from sqlalchemy import String, insert, select

from app_support import PASSWORD, candidates, home, me, set_settings  # noqa: F401 (home: fixture)
from conftest import fresh_postgres, need_postgres, write_jsonl
from labeling_app import handlers as h
from labeling_app import queue
from rlhf.data import formats, registry
from rlhf.data.ingest import import_demonstrations, import_prompts, import_rankings
from rlhf.data.records import add_response
from rlhf.data.store import db as store_db
from rlhf.data.store import session_scope
from rlhf.data.store.app_models import Assignment, LabelItem
from rlhf.data.store.models import Base, Prompt, User
from rlhf.errors import InputError, RlhfError
from rlhf.review import actions as review

# every VARCHAR(N) of the schema: what guards it where text enters (the same constant), or why no person's text reaches it
GUARDED = {
    ("users", "name"): formats.NAME_CHARS,  # accounts.check_name (64), records.get_or_create_user
    ("prompts", "external_id"): formats.ID_CHARS,  # formats.check_prompt
    ("responses", "model_version"): formats.MODEL_REF_CHARS,  # records.add_response
    ("reviews", "reviewer_name"): formats.NAME_CHARS,  # records.add_review
    ("dataset_versions", "name"): formats.REGISTRY_NAME_CHARS,  # registry.snapshot: a builder's name
    ("model_versions", "name"): formats.REGISTRY_NAME_CHARS,  # registry.check_registry_name
    ("gold_items", "created_by"): formats.NAME_CHARS,  # gold.mark_gold: the reviewer's name
    ("item_priorities", "model_ref"): formats.MODEL_REF_CHARS,  # priorities.write_priorities (_check_rows)
    ("app_settings", "updated_by"): formats.NAME_CHARS,  # a user's name
    ("jobs", "created_by"): formats.NAME_CHARS,  # a user's name
}
INTERNAL = {  # the code's own vocabulary, hashes and hosts: never a person's text
    "role", "split", "origin", "status", "kind", "item_type", "verdict", "stage", "result_type", "choice", "winner",
    "content_hash", "code_version", "password_hash", "key", "host",
}
NOT_YET = {  # rlhf/review/ab.py and review_models.py: see the report (model references as given, names built from them)
    ("ab_sessions", "name"), ("ab_sessions", "model_a"), ("ab_sessions", "model_b"), ("ab_sessions", "prompts_ref"),
    ("ab_sessions", "created_by"), ("ab_judgements", "judge_name"),
}


def test_every_sized_column_is_guarded_where_its_text_enters():
    unknown = []
    for table in Base.metadata.tables.values():
        for col in table.columns:
            if not isinstance(col.type, String) or not col.type.length:
                continue
            where = (table.name, col.name)
            if where in GUARDED:
                assert col.type.length == GUARDED[where], f"{where}: VARCHAR({col.type.length}) but checked at {GUARDED[where]}"
            elif col.name not in INTERNAL and where not in NOT_YET:
                unknown.append(f"{table.name}.{col.name} VARCHAR({col.type.length})")
    assert not unknown, f"no check guards {unknown}: check the text where it enters, or make the column Text"


def prompts(tmp_path, rows, name="p.jsonl"):
    with session_scope() as db:
        return import_prompts(db, write_jsonl(tmp_path / name, rows))


def user_msg(text="Hi"):
    return [{"role": "user", "content": text}]


# --------------------------------------------------------------------------- sizes


def test_a_prompt_id_fits_its_column_or_is_refused_by_name(home, tmp_path):
    assert prompts(tmp_path, [{"id": "x" * formats.ID_CHARS, "messages": user_msg()}]).added == 1
    with pytest.raises(InputError, match=r"long.jsonl:1: id: text is 257 characters, over the limit of 256"):
        prompts(tmp_path, [{"id": "y" * 257, "messages": user_msg("other")}], "long.jsonl")


def test_names_fit_their_columns_or_are_refused_by_name(home, tmp_path):
    demo = {"prompt_id": "p3", "messages": user_msg("Name a prime number.") + [{"role": "assistant", "content": "2"}]}
    with session_scope() as db:
        assert import_demonstrations(db, write_jsonl(tmp_path / "ok.jsonl", [{**demo, "annotator": "n" * 128}])).added == 1
    with pytest.raises(InputError, match=r"d.jsonl:1: annotator: text is 129 characters, over the limit of 128"):
        with session_scope() as db:
            import_demonstrations(db, write_jsonl(tmp_path / "d.jsonl", [{**demo, "annotator": "a" * 129}]))
    with pytest.raises(InputError, match=r"d2.jsonl: --approved-by: text is 129 characters"):
        with session_scope() as db:
            import_demonstrations(db, write_jsonl(tmp_path / "d2.jsonl", [demo]), approved_by="b" * 129)


def test_tags_and_model_references_fit_or_are_refused_by_name(home, tmp_path):
    with pytest.raises(InputError, match=r":1: tags\[1\]: text is 129 characters, over the limit of 128"):
        prompts(tmp_path, [{"id": "t", "messages": user_msg(), "tags": ["ok", "t" * 129]}])
    long_ref = "/models/" + "m" * (formats.MODEL_REF_CHARS - 8)
    candidates("p1", k=2, version=long_ref)  # exactly 256: stored, and its queue item key (longer) fits too
    with session_scope() as db:
        queue.sync_items(db)
        assert db.scalar(select(LabelItem.key).where(LabelItem.kind == "rank")).endswith(long_ref)
        p = db.scalar(select(Prompt).where(Prompt.external_id == "p2"))
        with pytest.raises(InputError, match="model_version: text is 257 characters, over the limit of 256"):
            add_response(db, p, "an answer", origin="model", model_version=long_ref + "x")


def test_registry_names_are_checked(home, tiny_model):
    with session_scope() as db:
        mv = registry.register_model(db, name="n" * 64, stage="sft", base="tiny", path=str(tiny_model),
                                     dataset_versions=[], config={}, metrics={}, seed=0)
        assert mv.ref == "n" * 64 + "@v1"
        for bad in ("n" * 65, "has space", "a@b", ""):
            with pytest.raises(RlhfError, match="model name .*: use 1-64 letters"):
                registry.register_model(db, name=bad, stage="sft", base="tiny", path=str(tiny_model),
                                        dataset_versions=[], config={}, metrics={}, seed=0)


def test_a_write_no_entry_check_guards_is_refused_by_the_store_not_the_server(home):
    """The net under every write: a value over its column's size is an InputError naming table and column."""
    with pytest.raises(InputError, match=r"^users: name: 129 characters, over the column's limit of 128$"):
        with session_scope() as db:
            db.add(User(name="u" * 129, role="annotator"))


def test_postgresql_itself_enforces_the_sizes(tmp_path, monkeypatch):
    """Why the checks matter: past them, PostgreSQL refuses a long value with a driver error (SQLite would keep it)."""
    need_postgres()
    from sqlalchemy.exc import DataError

    with fresh_postgres() as url:
        engine = store_db.engine_for(url)
        with pytest.raises(DataError, match="value too long for type character varying\\(256\\)"):
            with engine.begin() as con:
                con.execute(insert(Prompt.__table__).values(external_id="x" * 257, messages=[], tags=[], split="train",
                                                            content_hash="h", created_at=Prompt.__table__.c.created_at.default.arg(None)))


# --------------------------------------------------------------------------- NUL


NUL = "bad\x00text"


@pytest.mark.parametrize("kind,row,field", [
    ("prompts", {"id": "n", "messages": user_msg(NUL)}, r"messages\[0\].content"),
    ("prompts", {"id": NUL, "messages": user_msg()}, "id"),
    ("prompts", {"id": "n", "messages": user_msg(), "tags": [NUL]}, r"tags\[0\]"),
    ("demonstrations", {"prompt_id": "p3", "messages": user_msg("Name a prime number.")
                        + [{"role": "assistant", "content": "2"}], "annotator": NUL}, "annotator"),
    ("rankings", {"prompt_id": "p3", "responses": ["2", "4"], "order": [[0], [1]], "reason": NUL}, "reason"),
])
def test_nul_in_a_file_is_refused_by_field(home, tmp_path, kind, row, field):
    importer = {"prompts": import_prompts, "demonstrations": import_demonstrations, "rankings": import_rankings}[kind]
    with pytest.raises(InputError, match=rf"f.jsonl:1: {field}: text contains a NUL character"):
        with session_scope() as db:
            importer(db, write_jsonl(tmp_path / "f.jsonl", [row]))


def test_nul_from_people_in_the_app_and_review_is_refused_by_field(home):
    candidates("p1", k=2)
    with session_scope() as db:
        p = db.scalar(select(Prompt).where(Prompt.external_id == "p2"))
        with pytest.raises(InputError, match="model_version: text contains a NUL character"):
            add_response(db, p, "an answer", origin="model", model_version=NUL)
        assert "\x00" not in add_response(db, p, "model said\x00this", origin="model", model_version="m@v1").text
    s = me("ana")
    v = h.write_next(s)
    with pytest.raises(RlhfError, match="text contains a NUL character"):  # the draft
        h.write_save_draft(s, NUL)
    with pytest.raises(RlhfError, match="answer: text contains a NUL character"):
        h.write_submit(s, NUL)
    with pytest.raises(RlhfError, match="note: text contains a NUL character"):
        h.write_skip(s, NUL)
    with session_scope() as db:
        assert db.get(Assignment, v.assignment_id).status == "assigned"  # nothing of the refused calls stayed
    with pytest.raises(RlhfError, match="guidelines|value: text contains a NUL character"):
        set_settings(guidelines=NUL)
    answer = h.write_submit(s, "A fine answer.")
    with session_scope() as db:
        with pytest.raises(InputError, match="reason: text contains a NUL character"):
            review.approve(db, "eve", "demonstration", answer.id, reason=NUL)

"""Registry: immutable versions, same content -> same version, tamper detection, atomic writes."""

from __future__ import annotations

import os
import shutil

import pytest
from sqlalchemy import select

from conftest import run_cli, write_jsonl
from rlhf.data import registry
from rlhf.errors import IntegrityError, NotFoundError, RlhfError
from rlhf.data.store import session_scope
from rlhf.data.ingest import import_demonstrations, import_prompts
from rlhf.data.store.models import DatasetVersion


@pytest.fixture
def workspace(workspace, database):
    """conftest's workspace, on SQLite and on a fresh PostgreSQL database (the `database` parameter)."""
    return workspace


def add_prompts(tmp_path, n, start=0, heldout_every=4):
    rows = [{"id": f"p{i}", "messages": [{"role": "user", "content": f"question {i}"}],
             "tags": ["t"] + (["heldout"] if i % heldout_every == 0 else [])} for i in range(start, start + n)]
    path = write_jsonl(tmp_path / f"p{start}.jsonl", rows)
    with session_scope() as s:
        import_prompts(s, path)
    return rows


def test_snapshot_versions_and_same_content(workspace, tmp_path):
    add_prompts(tmp_path, 4)
    with session_scope() as s:
        v1, created = registry.snapshot(s, "prompts")
        assert created and v1.ref == "prompts@v1" and v1.row_count == 4
    with session_scope() as s:
        again, created = registry.snapshot(s, "prompts")
        assert not created and again.ref == "prompts@v1"
    add_prompts(tmp_path, 2, start=10)
    with session_scope() as s:
        v2, created = registry.snapshot(s, "prompts")
        assert created and v2.ref == "prompts@v2" and v2.row_count == 6
    with session_scope() as s:  # v1 is unchanged: immutable
        ds1 = registry.load(s, "prompts@v1")
        latest = registry.load(s, "prompts@latest")
        assert len(ds1) == 4 and len(latest) == 6
        assert sorted(ds1["split"]) == ["heldout", "train", "train", "train"]
        assert ds1.to_list()[0]["prompt_id"] == "p0"


def test_lineage_recorded(workspace, tmp_path):
    add_prompts(tmp_path, 3)
    with session_scope() as s:
        dv, _ = registry.snapshot(s, "prompts")
        info = registry.describe(dv)
    assert info["lineage"]["row_ids"] == [1, 2, 3]
    assert info["lineage"]["filter"] and info["lineage"]["code_version"] and info["content_hash"]


def _rewrite_rows(path: str) -> None:
    """Change every row's split in place: the Arrow files still load, the content no longer matches."""
    import datasets

    changed = datasets.load_from_disk(path).map(lambda r: {"split": "train"})
    tmp = path + "-new"
    changed.save_to_disk(tmp)
    for f in os.listdir(tmp):
        if f.endswith(".arrow"):
            os.replace(os.path.join(tmp, f), os.path.join(path, f))


def _remove_folder(path: str) -> None:
    import shutil

    shutil.rmtree(path)


@pytest.mark.parametrize("damage, message", [(_rewrite_rows, "prompts@v1: content hash mismatch"),
                                             (_remove_folder, "cannot be read")])
def test_a_damaged_snapshot_is_an_integrity_error(workspace, tmp_path, damage, message):
    add_prompts(tmp_path, 4)
    with session_scope() as s:
        dv, _ = registry.snapshot(s, "prompts")
        path = dv.path
    damage(path)
    with session_scope() as s:
        with pytest.raises(IntegrityError, match=message):
            registry.load(s, "prompts@v1")


def test_unknown_versions(workspace, tmp_path):
    add_prompts(tmp_path, 2)
    with session_scope() as s:
        registry.snapshot(s, "prompts")
        with pytest.raises(NotFoundError, match=r"unknown dataset version prompts@v7; known: prompts@v1"):
            registry.load(s, "prompts@v7")
        with pytest.raises(NotFoundError, match="no versions of 'sft' yet"):
            registry.load(s, "sft@latest")
        with pytest.raises(NotFoundError, match="not a version reference"):
            registry.get_version(s, "prompts@7")
        with pytest.raises(NotFoundError, match="unknown dataset 'nope'"):
            registry.snapshot(s, "nope")


def test_pin_model_and_model_versions(workspace, tiny_model):
    """One resolver of model references: built-in, folder, rubric, NAME@latest -> NAME@vN, unknown names."""
    from rlhf.train import modeling

    with session_scope() as s:
        assert registry.pin_model(s, "builtin") == registry.pin_model(s, registry.BUILTIN) == registry.BUILTIN
        assert registry.pin_model(s, str(tiny_model)) == str(tiny_model)  # a folder: as given
        assert registry.pin_model(s, "rubric:concise_helpful") == "rubric:concise_helpful"
        with pytest.raises(NotFoundError, match="unknown model version sft@latest; no 'sft' models registered yet"):
            registry.pin_model(s, "sft@latest")
        assert registry.pin_model(s, "sft@latest", strict=False) == "sft@latest"  # answers made elsewhere
        for _ in range(2):
            registry.register_model(s, name="sft", stage="sft", base=registry.BUILTIN, path=str(tiny_model),
                                    dataset_versions=[], config={}, metrics={}, seed=0)
    with session_scope() as s:
        assert registry.pin_model(s, "sft@latest") == "sft@v2" and registry.pin_model(s, "sft@v1") == "sft@v1"
        with pytest.raises(NotFoundError, match="unknown model version sft@v9; known: sft@v1, sft@v2"):
            registry.pin_model(s, "sft@v9")
    resolved = modeling.resolve("sft@latest")
    assert resolved.ref == "sft@v2" and resolved.path == tiny_model
    assert modeling.resolve("builtin").ref == registry.BUILTIN


def test_empty_snapshot_is_an_error(workspace):
    with session_scope() as s:
        with pytest.raises(RlhfError, match="nothing to snapshot for 'sft'"):
            registry.snapshot(s, "sft")


def test_crash_during_write_leaves_no_version(workspace, tmp_path, monkeypatch):
    add_prompts(tmp_path, 3)

    def boom(*a, **k):
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(os, "rename", boom)
        with pytest.raises(OSError, match="disk full"):
            with session_scope() as s:
                registry.snapshot(s, "prompts")
    root = workspace / "registry" / "prompts"
    assert [p.name for p in root.iterdir()] == []  # temp folder removed, no v1
    with session_scope() as s:
        assert s.scalars(select(DatasetVersion)).all() == []
        dv, created = registry.snapshot(s, "prompts")
        assert created and dv.ref == "prompts@v1"


def test_failed_commit_removes_the_renamed_folder(workspace, tmp_path):
    add_prompts(tmp_path, 3)
    with pytest.raises(RuntimeError):
        with session_scope() as s:
            dv, _ = registry.snapshot(s, "prompts")
            assert os.path.isdir(dv.path)
            raise RuntimeError("crash before commit")
    assert not (workspace / "registry" / "prompts" / "v1").exists()


def test_sft_snapshot_takes_approved_only(workspace, tmp_path):
    add_prompts(tmp_path, 4)
    demos = [{"prompt_id": f"p{i}", "messages": [{"role": "user", "content": f"question {i}"},
                                                  {"role": "assistant", "content": f"answer {i}"}]} for i in range(4)]
    with session_scope() as s:
        import_demonstrations(s, write_jsonl(tmp_path / "a.jsonl", demos[:2]), approved_by="lead")
        import_demonstrations(s, write_jsonl(tmp_path / "b.jsonl", demos[2:]))
    with session_scope() as s:
        dv, _ = registry.snapshot(s, "sft")
        rows = registry.load(s, dv.ref).to_list()
        assert [r["prompt_id"] for r in rows] == ["p0", "p1"]
        assert rows[0]["prompt"] == [{"role": "user", "content": "question 0"}]
        assert rows[0]["completion"] == [{"role": "assistant", "content": "answer 0"}]
        assert rows[0]["split"] == "heldout" and rows[1]["split"] == "train"
        everything, _ = registry.snapshot(s, "sft", registry.SnapshotOptions(include_pending=True))
        assert everything.row_count == 4


def test_cli_snapshot_list_show(workspace, tmp_path):
    add_prompts(tmp_path, 3)
    out = run_cli("registry", "snapshot", "prompts")
    assert out.returncode == 0 and out.stdout.strip() == "prompts@v1"
    assert run_cli("registry", "snapshot", "prompts").stdout.strip() == "prompts@v1"
    listing = run_cli("registry", "list").stdout
    assert "prompts@v1" in listing and "3 rows" in listing
    show = run_cli("registry", "show", "prompts@latest")
    assert show.returncode == 0 and '"verified": true' in show.stdout and '"rows": 3' in show.stdout
    bad = run_cli("registry", "show", "prompts@v3")
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown dataset version prompts@v3")


def test_dangling_builtin_link_is_replaced(workspace, builtin_cache, tmp_path, monkeypatch):
    from rlhf import fs
    from rlhf.train import modeling

    link = workspace / "models" / modeling.BUILTIN
    link.unlink()
    link.symlink_to(tmp_path / "gone")  # e.g. a cache folder that was deleted
    # the conversion itself is slow; pretend it ran by linking the session's converted copy
    monkeypatch.setattr(fs, "atomic_dir", lambda final, write: (final.symlink_to(builtin_cache), final)[1])
    assert (modeling.builtin_path() / "config.json").exists()


def _swap_weights(folder):
    (folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:-8] + b"\x00" * 8)


@pytest.mark.parametrize("damage,message", [
    (_swap_weights, r"sft@v1: .*/model\.safetensors changed after registration \(sha256 [0-9a-f]{12}, registered "),
    (lambda f: (f / "tokenizer.json").unlink(), r"sft@v1: .*/tokenizer\.json is missing: it was removed after registration"),
    (lambda f: (f / "adapter_config.json").write_text("{}"), r"sft@v1: .*/adapter_config\.json was added after registration"),
    (lambda f: shutil.rmtree(f), r"sft@v1: model folder .* is missing"),
])
def test_a_tampered_model_version_is_an_integrity_error(workspace, tiny_model, tmp_path, damage, message):
    """Registration hashes the model folder's files; verify_model re-hashes them and names what changed."""
    folder = tmp_path / "weights"
    shutil.copytree(tiny_model, folder)
    with session_scope() as s:
        mv = registry.register_model(s, name="sft", stage="sft", base="tiny", path=str(folder), dataset_versions=[],
                                     config={}, metrics={}, seed=0)
        assert set(mv.file_hashes) >= {"config.json", "model.safetensors", "tokenizer.json"}
        assert mv.content_hash == registry.folder_hash(registry.hash_model_files(folder))
    (folder / "README.md").write_text("# a model card written after registration: documentation, not hashed")
    with session_scope() as s:
        mv = registry.get_model_version(s, "sft@v1")
        assert registry.verify_model(mv).startswith("sft@v1: verified (")
        damage(folder)
        with pytest.raises(IntegrityError, match=message):
            registry.verify_model(mv)


def test_a_model_version_registered_before_hashes_still_loads(workspace, tiny_model):
    with session_scope() as s:
        mv = registry.register_model(s, name="old", stage="sft", base="tiny", path=str(tiny_model), dataset_versions=[],
                                     config={}, metrics={}, seed=0)
        mv.content_hash = mv.file_hashes = None  # as rows made before migration 0004 recorded it
    with session_scope() as s:
        assert registry.verify_model(registry.get_model_version(s, "old@v1")) == (
            "old@v1: no hash recorded (registered before model hashes); its files are not verified")


def test_a_version_claimed_twice_is_a_one_line_error_not_a_lost_transaction(workspace, tiny_model):
    kw = dict(name="sft", stage="sft", base="tiny", path=str(tiny_model), dataset_versions=[], config={}, metrics={}, seed=0)
    with session_scope() as s:
        first = registry.register_model(s, **kw, version=1)
        with pytest.raises(RlhfError, match=r"^sft@v1 was registered by another run at the same time; the weights at "):
            registry.register_model(s, **kw, version=1)
        assert registry.register_model(s, **kw).ref == "sft@v2"  # the transaction goes on
    with session_scope() as s:
        assert [m.ref for m in s.scalars(select(registry.ModelVersion).order_by(registry.ModelVersion.version))] == [
            first.ref, "sft@v2"]


@pytest.mark.parametrize("name", [".", "..", ".hidden", "a/b", "a@v1", "", "x" * 65, "bad\x00name"])
def test_a_name_that_is_not_a_plain_folder_is_refused(name):
    with pytest.raises(RlhfError, match="model name .*use 1-64 letters"):
        registry.check_registry_name(name)


def test_plain_names_pass():
    for name in ("sft", "rm-small_2", "v1.2", "a" * 64):
        assert registry.check_registry_name(name) == name

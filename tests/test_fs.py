"""Atomic writes: the new folder always lands, an old one at the target is moved aside (never deleted),
and a crash leaves neither a half folder nor a temporary one."""

from __future__ import annotations

import os

import pytest

from rlhf import fs


def test_atomic_dir_writes_and_moves_an_existing_folder_aside(tmp_path):
    final = tmp_path / "models" / "sft" / "v1"
    final.mkdir(parents=True)
    (final / "old.txt").write_text("left by a crash after the rename, before the registration")
    fs.atomic_dir(final, lambda tmp: (tmp / "new.txt").write_text("fresh"))
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    orphans = [p for p in final.parent.iterdir() if p.name.startswith(".orphan-v1-")]
    assert [p.name for p in final.parent.iterdir() if not p.name.startswith(".orphan-")] == ["v1"]
    assert len(orphans) == 1 and (orphans[0] / "old.txt").exists()


def test_atomic_dir_crash_leaves_nothing(tmp_path, monkeypatch):
    def boom(tmp):
        (tmp / "half.txt").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        fs.atomic_dir(tmp_path / "v1", boom)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(os, "rename", lambda *a: (_ for _ in ()).throw(OSError("rename failed")))
    with pytest.raises(OSError, match="rename failed"):
        fs.atomic_dir(tmp_path / "v1", lambda tmp: (tmp / "x").write_text("x"))
    assert list(tmp_path.iterdir()) == []


def test_write_json(tmp_path):
    fs.write_json(tmp_path / "r.json", {"a": 1, "path": tmp_path})
    assert (tmp_path / "r.json").read_text() == '{\n "a": 1,\n "path": "' + str(tmp_path) + '"\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_save_model_keeps_the_fresh_weights_when_the_version_folder_exists(workspace, tiny_model):
    """A crash between the rename and the registration leaves models/NAME/vN behind: the next run's
    save must land its own weights there (the old folder moved aside), not delete them."""
    import torch
    from transformers import AutoModelForCausalLM

    from rlhf.train import modeling, stage

    torch.manual_seed(0)
    model = modeling.load_model(str(tiny_model))
    with torch.no_grad():
        model.lm_head.weight.add_(torch.randn_like(model.lm_head.weight))  # "trained": differs from tiny_model
    tokenizer = modeling.load_tokenizer(str(tiny_model))
    target = workspace / "models" / "sft" / "v1"
    stage.save_model(model, tokenizer, target)  # the crashed run's folder
    (target / "crashed-run.txt").write_text("x")
    fresh = modeling.load_model(str(tiny_model))
    out = stage.save_model(fresh, tokenizer, target)
    assert out == target and not (target / "crashed-run.txt").exists()
    saved = AutoModelForCausalLM.from_pretrained(target)
    for name, p in fresh.state_dict().items():
        assert torch.equal(saved.state_dict()[name], p), name
    orphans = [p for p in target.parent.iterdir() if p.name.startswith(".orphan-")]
    assert len(orphans) == 1 and (orphans[0] / "crashed-run.txt").exists()

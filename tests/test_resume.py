"""Resume without training: which checkpoint counts, the run's train loss across a resume, RNG states that load
with `weights_only=True`, and the doctests of the many-process and resume helpers."""

from __future__ import annotations

import doctest
import json
import random

import numpy as np
import pytest
import torch

from rlhf.errors import IntegrityError, NotFoundError


def test_only_marked_checkpoints_count(tmp_path):
    from rlhf.train import resume

    root = resume.trainer_dir(tmp_path)
    for step, marked in ((2, True), (4, True), (6, False)):
        (root / f"checkpoint-{step}").mkdir(parents=True)
        if marked:
            (root / f"checkpoint-{step}" / resume.MARKER).write_text(json.dumps({"step": step, "config": {}}))
    (root / "checkpoint-x").mkdir()
    assert [p.name for p in resume.checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert resume.latest(tmp_path).name == "checkpoint-4"  # 6 was cut short: no mark
    with pytest.raises(NotFoundError, match="no complete checkpoint"):
        resume.latest(tmp_path / "elsewhere")


def test_train_loss_weights_each_logged_window_by_its_steps():
    from rlhf.train import resume

    # logged at steps 5, 6 (a checkpoint), 10 and 11 (the last step)
    log = [{"loss": 4.0, "step": 5}, {"loss": 2.0, "step": 6}, {"loss": 1.0, "step": 10}, {"loss": 0.5, "step": 11}]
    assert resume.train_loss(log) == pytest.approx((4 * 5 + 2 + 1 * 4 + 0.5) / 11)
    assert resume.train_loss([]) is None


def test_ppo_rng_state_loads_with_weights_only(tmp_path):
    """rng.pt holds tensors and numbers only (it held numpy's tuple before, which needs weights_only=False)."""
    from rlhf.train.ppo import checkpoint

    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # numpy now holds a cached gaussian: part of its state
    path = checkpoint.save(tmp_path, 1, net, opt, sched, {"history": []})
    torch.load(path / "rng.pt", weights_only=True)
    expected = (random.random(), np.random.normal(), np.random.rand(), torch.rand(2).tolist())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    checkpoint.load(path, net, opt, sched)
    assert (random.random(), np.random.normal(), np.random.rand(), torch.rand(2).tolist()) == expected

    torch.save({"numpy": np.random.get_state()}, path / "rng.pt")  # the old format
    with pytest.raises(IntegrityError, match="rng.pt: cannot be loaded safely"):
        checkpoint.load(path, net, opt, sched)


@pytest.mark.parametrize("module", ["rlhf.train.distributed", "rlhf.train.resume"])
def test_doctests(module):
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0

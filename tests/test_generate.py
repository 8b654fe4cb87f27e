"""Candidates: K sampled answers per prompt stored as model responses, batched, no duplicates on a re-run."""

from __future__ import annotations

import json

import pytest

from rlhf.errors import RlhfError
from tests.conftest import run_cli, write_jsonl


def _prompts(workspace, tmp_path, n=5):
    from rlhf.data import registry
    from rlhf.data.store import session_scope
    from rlhf.data.ingest import import_prompts

    rows = [{"id": f"g{i}", "messages": [{"role": "user", "content": f"Tell me about topic {i}."}],
             "tags": ["heldout"] if i == 0 else []} for i in range(n)]
    with session_scope() as s:
        import_prompts(s, write_jsonl(tmp_path / "p.jsonl", rows))
        return registry.snapshot(s, "prompts")[0].ref


def test_generate_stores_k_per_prompt_once(workspace, tmp_path, tiny_model):
    from rlhf.data.store import session_scope
    from rlhf.data.store.models import Prompt, Response
    from rlhf.train.generate import generate_candidates
    from rlhf.train.sampling import Sampling

    ref = _prompts(workspace, tmp_path)
    sampling = Sampling(k=3, max_new_tokens=6, temperature=1.0, batch_size=4, seed=1)
    report = generate_candidates(str(tiny_model), ref, sampling, split="train", progress=False)
    assert report.prompts_seen == 4 and report.sampled == 12
    assert report.added + report.empty + report.duplicates == 12 and report.added >= 10  # a random model: all distinct
    with session_scope() as s:
        rows = s.query(Response, Prompt).join(Prompt, Response.prompt_id == Prompt.id).all()
        assert {p.external_id for _, p in rows} == {"g1", "g2", "g3", "g4"}  # the heldout prompt was not asked
        r = rows[0][0]
        assert r.origin == "model" and r.model_version == str(tiny_model.resolve())
        assert r.generation["temperature"] == 1.0 and r.generation["max_new_tokens"] == 6 and "index" in r.generation
        assert all(resp.text == resp.text.strip() and resp.text for resp, _ in rows)
    again = generate_candidates(str(tiny_model), ref, sampling, split="train", progress=False)
    full = sum(1 for c in report.per_prompt.values() if c >= 3)
    assert again.prompts_skipped >= full and again.added <= 12 - report.added


def test_generate_cli_and_bad_options(workspace, tmp_path, tiny_model):
    ref = _prompts(workspace, tmp_path, n=3)
    out = run_cli("generate", "--model", str(tiny_model), "--prompts", ref, "--k", "2", "--max-new-tokens", "4",
                  "--split", "heldout")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1][len("RESULT "):])["generate"]
    assert result["prompts_seen"] == 1 and result["sampled"] == 2
    assert "sampling" in out.stderr  # the progress bar
    bad = run_cli("generate", "--model", str(tiny_model), "--prompts", ref, "--k", "0")
    assert bad.returncode == 2 and "--k 0" in bad.stderr
    missing = run_cli("generate", "--model", "nosuch@v3", "--prompts", ref)
    assert missing.returncode == 2 and "unknown model version nosuch@v3" in missing.stderr


def test_generate_unknown_split(workspace, tmp_path, tiny_model):
    from rlhf.train.generate import generate_candidates

    ref = _prompts(workspace, tmp_path, n=2)
    with pytest.raises(RlhfError, match="--split"):
        generate_candidates(str(tiny_model), ref, split="dev", progress=False)


def test_a_rerun_of_rlhf_generate_adds_nothing(workspace, tmp_path, tiny_model):
    """`rlhf generate` twice with the same registered model and snapshot (as the demo and the admin's job run it):
    the second run finds every prompt at K answers from that version, samples nothing and stores nothing."""
    from sqlalchemy import func, select

    from rlhf.data.registry import register_model
    from rlhf.data.store import session_scope
    from rlhf.data.store.models import Response

    ref = _prompts(workspace, tmp_path, n=4)
    with session_scope() as s:
        register_model(s, name="sft", stage="sft", base="tiny", path=str(tiny_model), dataset_versions=[], config={},
                       metrics={}, seed=0)

    def generate() -> tuple[dict, list]:
        out = run_cli("generate", "--model", "sft@latest", "--prompts", ref, "--k", "2", "--max-new-tokens", "6",
                      "--split", "all", "--seed", "0")
        assert out.returncode == 0, out.stderr
        with session_scope() as s:
            rows = s.execute(select(Response.id, Response.prompt_id, Response.content_hash)
                             .where(Response.model_version == "sft@v1").order_by(Response.id)).all()
        return json.loads(out.stdout.strip().splitlines()[-1][len("RESULT "):])["generate"], rows

    first, rows = generate()
    assert first["prompts_seen"] == 4 and first["added"] == len(rows)
    with session_scope() as s:
        per_prompt = s.execute(select(func.count()).select_from(Response).group_by(Response.prompt_id)).scalars().all()
    assert sorted(per_prompt) == [2, 2, 2, 2], f"the first run left a prompt short of K=2: {first}"
    again, rows_again = generate()
    assert (again["prompts_skipped"], again["sampled"], again["added"]) == (4, 0, 0), again
    assert rows_again == rows  # the same rows, nothing added, removed or replaced

"""`rlhf export`: registry versions as JSONL / Parquet / datasets folders in trl's shapes, with a dataset card;
datasets and trl read them as they are; importing an export gives back the same content digest."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli, write_jsonl
from rlhf.data import registry
from rlhf.data.export import content_digest, export_version
from rlhf.data.ingest import import_demonstrations, import_prompts, import_rankings
from rlhf.data.ingest import import_foreign
from rlhf.data.store import session_scope
from rlhf.errors import RlhfError

WORDS = "river stone cloud paper window garden pencil orange rabbit candle".split()


def fill(tmp_path, n=8):
    """n prompts (every 4th held out), a demonstration each, a 3-answer ranking with a tie each; all snapshotted."""
    prompts, demos, rankings = [], [], []
    for i in range(n):
        msgs = [{"role": "user", "content": f"Name something, number {i}."}]
        prompts.append({"id": f"p{i}", "messages": msgs, "tags": ["t"] + (["heldout"] if i % 4 == 0 else [])})
        demos.append({"prompt_id": f"p{i}", "messages": msgs + [{"role": "assistant", "content": f"A {WORDS[i % 10]}."}],
                      "annotator": "ana"})
        order = [[1], [0, 2]] if i % 2 else [[2], [1], [0]]
        rankings.append({"prompt_id": f"p{i}", "responses": [f"{w} {i}" for w in WORDS[i % 3:i % 3 + 3]], "order": order,
                         "annotator": f"ann{i % 2}"})
    with session_scope() as s:
        import_prompts(s, write_jsonl(tmp_path / "p.jsonl", prompts))
        import_demonstrations(s, write_jsonl(tmp_path / "d.jsonl", demos), approved_by="lead")
        import_rankings(s, write_jsonl(tmp_path / "r.jsonl", rankings), approved_by="lead")
    with session_scope() as s:
        return [registry.snapshot(s, name)[0].ref for name in ("prompts", "sft", "preferences")]


def load(dest, fmt, cache):
    import datasets

    if fmt == "hf":
        return datasets.load_from_disk(str(dest))
    builder, file = ("json", "data.jsonl") if fmt == "jsonl" else ("parquet", "data.parquet")
    return datasets.load_dataset(builder, data_files=str(dest / file), split="train", cache_dir=str(cache))


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
def test_export_loads_in_trl_shapes_and_round_trips(workspace, tmp_path, monkeypatch, fmt):
    refs = fill(tmp_path)
    digests, dests = {}, {}
    with session_scope() as s:
        for ref in refs:
            dests[ref] = tmp_path / "out" / ref.replace("@", "-")
            report = export_version(s, ref, fmt, dests[ref])
            digests[ref] = report.digest
            assert report.digest == content_digest(registry.load(s, ref).to_list())
    shapes = {"prompts@v1": ["prompt"], "sft@v1": ["prompt", "completion"], "preferences@v1": ["prompt", "chosen", "rejected"]}
    for ref, dest in dests.items():
        ds = load(dest, fmt, tmp_path / "hf-cache")
        assert ds.column_names[:len(shapes[ref])] == shapes[ref]
        assert {"prompt_id", "tags", "split"} <= set(ds.column_names)
        assert ds[0]["prompt"] == [{"role": "user", "content": "Name something, number 0."}]
        card = (dest / "README.md").read_text()
        assert f"# {ref}" in card and digests[ref] in card and "license:" in card and "Lineage" in card
    pref = load(dests["preferences@v1"], fmt, tmp_path / "hf-cache")
    assert len(pref) == 4 * 2 + 4 * 3  # 4 rankings with a tie (2 pairs each) + 4 strict orders of 3 (3 pairs each)
    assert pref[0]["chosen"] == [{"role": "assistant", "content": "cloud 0"}]
    sft = load(dests["sft@v1"], fmt, tmp_path / "hf-cache")
    assert sorted(set(sft["split"])) == ["heldout", "train"] and sft[1]["completion"][0]["content"] == "A stone."

    # the round trip: a fresh workspace imports the exports, snapshots, and gets the same content digest
    monkeypatch.setenv("RLHF_HOME", str(tmp_path / "fresh"))
    with session_scope() as s:
        for ref in refs:
            import_foreign(s, "dataset", dests[ref], approved_by="lead")
    with session_scope() as s:
        for ref in refs:
            again, created = registry.snapshot(s, ref.split("@")[0])
            assert created and content_digest(registry.load(s, again.ref).to_list()) == digests[ref], ref


def test_messages_shape_and_cli(workspace, tmp_path):
    fill(tmp_path, n=4)
    dest = tmp_path / "sft-messages"
    r = run_cli("export", "sft@v1", str(dest), "--format", "jsonl", "--shape", "messages")
    assert r.returncode == 0, r.stderr
    assert "sft@v1 -> " in r.stdout and "trl shape messages" in r.stdout and "Warning" not in r.stderr
    rows = [json.loads(line) for line in (dest / "data.jsonl").read_text().splitlines()]
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": "A river."} and "prompt" not in rows[0]

    r = run_cli("export", "sft@v1", str(dest), "--format", "jsonl")  # never over an existing export
    assert r.returncode == 2 and r.stderr.strip() == f"error: {dest} already exists: export to a new folder (nothing was written)"
    r = run_cli("export", "prompts@v1", str(tmp_path / "x"), "--shape", "messages")
    assert r.returncode == 2 and "--shape messages: a prompts version exports as prompt" in r.stderr
    r = run_cli("export", "sft@v1", str(tmp_path / "y"), "--format", "csv")
    assert r.returncode == 2 and "--format csv: expected one of jsonl, parquet, hf" in r.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_tampered_version_is_not_exported(workspace, tmp_path):
    import datasets

    fill(tmp_path, n=4)
    with session_scope() as s:
        path = registry.get_version(s, "sft@v1").path
    datasets.load_from_disk(path).map(lambda r: {"annotator": "mallory"}).save_to_disk(str(tmp_path / "changed"))
    for f in (tmp_path / "changed").glob("*.arrow"):  # the Arrow files still load; the content no longer matches
        f.replace(f"{path}/{f.name}")
    with session_scope() as s, pytest.raises(RlhfError, match="sft@v1: content hash mismatch"):
        export_version(s, "sft@v1", "jsonl", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_trl_trains_a_step_on_the_exports(workspace, tmp_path, tiny_model):
    """trl's own RewardTrainer (JSON export) and SFTTrainer (Parquet export) take the files as they are."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer, SFTConfig, SFTTrainer

    fill(tmp_path)
    with session_scope() as s:
        export_version(s, "preferences@v1", "jsonl", tmp_path / "pref")
        export_version(s, "sft@v1", "parquet", tmp_path / "sft")
    cache = tmp_path / "hf-cache"
    tok = AutoTokenizer.from_pretrained(tiny_model)
    common = dict(max_steps=1, per_device_train_batch_size=4, bf16=False, use_cpu=True, report_to="none",
                  save_strategy="no", activation_checkpointing=False, disable_tqdm=True)

    rm = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1)
    rm.config.pad_token_id = tok.pad_token_id
    trainer = RewardTrainer(model=rm, args=RewardConfig(output_dir=str(tmp_path / "rm"), **common),
                            train_dataset=load(tmp_path / "pref", "jsonl", cache), processing_class=tok)
    out = trainer.train()
    assert out.global_step == 1 and out.training_loss > 0

    lm = AutoModelForCausalLM.from_pretrained(tiny_model)
    trainer = SFTTrainer(model=lm, args=SFTConfig(output_dir=str(tmp_path / "lm"), **common),
                         train_dataset=load(tmp_path / "sft", "parquet", cache), processing_class=tok)
    out = trainer.train()
    assert out.global_step == 1 and out.training_loss > 0

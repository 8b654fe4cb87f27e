"""Reward-model stage: left truncation, a tiny RM that learns a toy preference, metrics, scoring CLI, bad input."""

from __future__ import annotations

import json
import random

import pytest

from rlhf.errors import RlhfError
from tests.conftest import run_cli, write_jsonl

WORDS = "river stone cloud paper window garden pencil orange rabbit candle silver forest bottle ladder winter".split()


def _toy_preferences(tmp_path, n_prompts=48, n_heldout=12, seed=0) -> str:
    """Rankings where the answer containing "banana" is best and two without it tie below: 2 pairs per prompt."""
    from rlhf.data import registry
    from rlhf.data.store import session_scope
    from rlhf.data.ingest import import_prompts, import_rankings

    rng = random.Random(seed)
    prompts, rankings = [], []
    for i in range(n_prompts):
        pid = f"t{i}"
        tags = ["fruit"] + (["heldout"] if i < n_heldout else [])
        prompts.append({"id": pid, "messages": [{"role": "user", "content": f"Say something, number {i}."}], "tags": tags})
        answers = []
        for extra in ("banana", *rng.sample(WORDS, 2)):  # same length (7 words): only "banana" tells them apart
            words = rng.sample([w for w in WORDS if w != extra], 6)
            words.insert(rng.randrange(len(words) + 1), extra)
            answers.append(" ".join(words))
        rankings.append({"prompt_id": pid, "responses": answers, "order": [[0], [1, 2]], "annotator": f"ann{i % 2}"})
    with session_scope() as s:
        import_prompts(s, write_jsonl(tmp_path / "toy-prompts.jsonl", prompts))
        import_rankings(s, write_jsonl(tmp_path / "toy-rankings.jsonl", rankings), approved_by="lead")
    with session_scope() as s:
        return registry.snapshot(s, "preferences")[0].ref


def test_prompt_cut_from_the_left_answer_whole(builtin_cache):
    from rlhf.train import modeling
    from rlhf.train.reward import tokenize_response

    tok = modeling.load_tokenizer(str(builtin_cache))
    prompt = [{"role": "user", "content": "word " * 300 + "Finally, what is 2 + 2?"}]
    answer = "Two plus two is four."
    full, cut = tokenize_response(tok, prompt, answer, 4096)
    ids, cut2 = tokenize_response(tok, prompt, answer, 64)
    assert not cut and cut2 and len(ids) == 64
    assert ids[-20:] == full[-20:]  # the end (answer and end of turn) is kept whole
    assert "Two plus two is four.<|im_end|>" in tok.decode(ids) and "what is 2 + 2?" in tok.decode(ids)
    with pytest.raises(RlhfError, match="longer than --max-length 8"):
        tokenize_response(tok, prompt, answer, 8)


def test_check_same_tokenizer(builtin_cache, tiny_model):
    from transformers import AutoTokenizer

    from rlhf.train import modeling
    from rlhf.train.reward import check_same_tokenizer

    a = modeling.load_tokenizer(str(builtin_cache))
    check_same_tokenizer(a, modeling.load_tokenizer(str(tiny_model)), "rm@v1 and sft@v1")
    b = AutoTokenizer.from_pretrained(builtin_cache)
    b.add_tokens(["<extra>"])
    with pytest.raises(RlhfError, match="tokenizer mismatch between rm@v1 and sft@v1: vocabularies differ"):
        check_same_tokenizer(a, b, "rm@v1 and sft@v1")


# The bars of the toy RM, held at every seed of tests/test_seeds_slow.py (seeds 0-5: the toy data's draw and the
# stage's --seed together). Measured there (2026-12-01, 24 held-out pairs): accuracy 1.000 at all six seeds;
# accuracy - accuracy_before min/median/max 0.333/0.417/0.667 (before: 0.333-0.667). Both bars keep a margin.
ACCURACY_BAR, GAIN_BAR = 0.85, 0.2


def train_toy_rm(tmp_path, tiny_model, seed: int = 0) -> tuple[dict, str]:
    """(the stage's RESULT, the preferences ref): a 2-layer random-init RM on `_toy_preferences(seed=seed)`, `--seed seed`."""
    from stages import rm as stage

    ref = _toy_preferences(tmp_path, seed=seed)
    result = stage.main(["--model", str(tiny_model), "--mode", "full", "--dataset", ref, "--epochs", "4", "--lr", "2e-3",
                         "--batch-size", "8", "--report-to", "none", "--max-length", "64", "--warmup-steps", "2",
                         "--seed", str(seed)])
    assert result["eval_pairs"] == 24 and result["train_pairs"] == 72
    return result, ref


def check_rm_learned(result: dict) -> None:
    assert result["accuracy"] >= ACCURACY_BAR, result
    assert result["accuracy"] > result["accuracy_before"] + GAIN_BAR, result


def test_tiny_rm_learns_toy_preference_and_scores(workspace, tmp_path, tiny_model):
    """A 2-layer random-init RM: held-out accuracy from chance to well above it; metrics registered; score CLI."""
    result, ref = train_toy_rm(tmp_path, tiny_model)
    check_rm_learned(result)

    from rlhf.data.registry import get_model_version
    from rlhf.data.store import session_scope

    with session_scope() as s:
        mv = get_model_version(s, result["model"])
        metrics, stage_name, path = mv.metrics, mv.stage, mv.path
    assert stage_name == "rm" and mv.dataset_versions == [ref]
    for key in ("accuracy", "accuracy/tag/fruit", "accuracy/annotator/ann0", "calibration/ece", "reward/mean",
                "reward/std", "reward/length_corr", "train_pairs", "eval_split"):
        assert key in metrics, key
    assert "heldout" in metrics["eval_split"] and "accuracy/tag/heldout" not in metrics

    rows = [{"prompt": "Say something, number 3.", "response": "river banana stone cloud paper window garden"},
            {"prompt": [{"role": "user", "content": "Say something, number 3."}], "response": "river stone cloud paper window garden forest"}]
    good = run_cli("score", "--model", result["model"], str(write_jsonl(tmp_path / "s.jsonl", rows)))
    assert good.returncode == 0, good.stderr
    scored = [json.loads(line) for line in good.stdout.strip().splitlines()]
    assert [r["response"] for r in scored] == [r["response"] for r in rows]
    assert scored[0]["reward"] > scored[1]["reward"]

    bad = run_cli("score", "--model", result["model"], str(write_jsonl(tmp_path / "b.jsonl", rows[:1] + [{"prompt": "Hi"}])))
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: {tmp_path / 'b.jsonl'}:2: response: missing required field"


def test_head_mode_trains_only_the_score_head(workspace, tmp_path, tiny_model):
    from rlhf.train import modeling
    from rlhf.train.rm import RMStageConfig, build_model
    from rlhf.train.stage import count_params

    model, peft = build_model(RMStageConfig(model=str(tiny_model), mode="head"), modeling.resolve(str(tiny_model)))
    trainable, total = count_params(model)
    assert peft is None and trainable == model.config.hidden_size and total > 1_000_000
    model, peft = build_model(RMStageConfig(model=str(tiny_model), mode="lora", lora_layers=1), modeling.resolve(str(tiny_model)))
    assert peft.layers_to_transform == [1] and peft.layers_pattern == "layers" and "score" in peft.modules_to_save
    assert set(peft.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_bad_inputs(workspace, tmp_path, tiny_model):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from rlhf.data.pairs import split_pairs
    from stages import rm as stage

    import datasets

    with pytest.raises(RlhfError, match="no pairs"):
        split_pairs(datasets.Dataset.from_list([]), 0.2, 0)

    ref = _toy_preferences(tmp_path, n_prompts=6, n_heldout=2)
    # a base whose tokenizer has no pad token (and no <|endoftext|> to use as one)
    nopad = tmp_path / "nopad"
    (tiny_model / "config.json").read_text()
    import shutil

    shutil.copytree(tiny_model, nopad)
    for f in nopad.glob("tokenizer*"):
        f.unlink()
    raw = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]").save_pretrained(nopad)
    with pytest.raises(RlhfError, match="no pad token"):
        stage.main(["--model", str(nopad), "--dataset", ref, "--report-to", "none"])
    with pytest.raises(RlhfError, match="expected a 'preferences' dataset"):
        stage.main(["--model", str(tiny_model), "--dataset", "prompts@latest", "--report-to", "none"])
    not_rm = run_cli("score", "--model", str(tiny_model), str(write_jsonl(tmp_path / "x.jsonl", [{"prompt": "a", "response": "b"}])))
    assert not_rm.returncode == 2 and "not a reward model" in not_rm.stderr


def test_qlora_mode_trains_and_scores(workspace, tmp_path, tiny_model):
    """4-bit NF4 base + LoRA (bitsandbytes CPU fallback): trains, saves an adapter, scores through `rlhf score`.
    bitsandbytes is in the [dev] extra the tests install: missing, this test fails rather than skips."""
    from stages import rm as stage

    ref = _toy_preferences(tmp_path, n_prompts=8, n_heldout=2)
    with pytest.raises(RlhfError, match="keep-layers 0"):
        stage.main(["--model", str(tiny_model), "--mode", "qlora", "--keep-layers", "1", "--dataset", ref, "--report-to", "none"])
    result = stage.main(["--model", str(tiny_model), "--mode", "qlora", "--dataset", ref, "--epochs", "1",
                         "--report-to", "none", "--max-length", "64"])
    out = run_cli("score", "--model", result["model"], str(write_jsonl(tmp_path / "s.jsonl", [{"prompt": "Hi", "response": "Hello."}])))
    assert out.returncode == 0, out.stderr
    assert "reward" in json.loads(out.stdout.splitlines()[0])

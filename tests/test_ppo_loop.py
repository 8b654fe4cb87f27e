"""The PPO loop on tiny random-init models: the checks every PPO implementation should pass.

- KL is 0 and the ratio is 1 on the first minibatch of the first epoch;
- the reference (adapter disabled) never changes, however much the policy does;
- with a toy reward a tiny policy's reward rises clearly within a few updates;
- same seed, same numbers; a run killed after 2 updates and resumed equals an uninterrupted run,
  optimizer state included;
- a NaN reward or a KL explosion stops with a clear message, keeping the last good checkpoint;
- the trunk states taken from generation equal a forward pass, and the split forward equals the model's.

The toy policy: a 2-layer SmolLM2-shaped model whose (untied) output layer is scaled up so that
sampling is peaky rather than uniform over 49k tokens. The toy reward: the share of response tokens
in a set S of 5000 tokens whose output embeddings point along one random direction, something a LoRA
adapter can learn by turning the last hidden state towards that direction.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from rlhf.errors import RlhfError
from rlhf.train import trunk
from rlhf.train.ppo import checkpoint, core, models, ranks, rollout, tokens
from rlhf.train.ppo.config import PPOStageConfig
from rlhf.train.ppo.trainer import PPOTrainer, TrainingStopped

PROMPTS = [[{"role": "user", "content": f"Question {i}: tell me about topic number {i}."}] for i in range(24)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def toy(tmp_path_factory, tiny_model):
    """(policy folder, tokenizer, target token set S)."""
    from rlhf.train import modeling

    base = modeling.load_model(str(tiny_model))
    with torch.no_grad():
        base.lm_head.weight = torch.nn.Parameter(base.lm_head.weight.detach().clone() * 8.0)  # peaky, untied
        base.config.tie_word_embeddings = False
        direction = torch.randn(base.config.hidden_size, generator=torch.Generator().manual_seed(1))
        target = (base.lm_head.weight @ direction).topk(5000).indices
    out = tmp_path_factory.mktemp("toy") / "policy"
    base.save_pretrained(out)
    tok = modeling.load_tokenizer(str(tiny_model))
    tok.save_pretrained(out)
    return out, tok, target


def toy_score(target):
    def score(messages, texts, response_ids, response_mask):
        return (torch.isin(response_ids, target) & response_mask).float().sum(1) / response_mask.sum(1).clamp(min=1)
    return score


def config(**overrides) -> PPOStageConfig:
    base = dict(value_model="policy_head", reward_model="rubric:toy", updates=4, batch_size=8, num_minibatches=2, ppo_epochs=2,
                max_new_tokens=8, lora_layers=0, lora_r=8, lora_alpha=16, lr=3e-3, kl_coef=0.01, missing_eos_penalty=0.0,
                normalize_rewards=True, checkpoint_every=2, samples_every=2, report_to="none", seed=0,
                sample_dtype="float32")  # the toy's peaky float32 logits lose too much in a bf16 copy
    return PPOStageConfig(**{**base, **overrides})


def trainer(toy, run_dir, score=None, **overrides) -> PPOTrainer:
    path, tok, target = toy
    cfg = config(**overrides)
    torch.manual_seed(cfg.seed)
    model = models.build(cfg, str(path))
    return PPOTrainer(cfg, model, tok, PROMPTS, score or toy_score(target), run_dir)


def numbers(history: list[dict]) -> list[dict]:
    """The metrics that must repeat exactly (timings never do)."""
    return [{k: v for k, v in h.items() if not k.startswith("time/")} for h in history]


def fixed_batch(tr: PPOTrainer):
    ids, mask = rollout.left_pad([tr.encoded[i] for i in range(4)], tr.tokenizer.pad_token_id)
    full = torch.cat([ids, torch.full((4, 3), 11)], 1)
    full_mask = torch.cat([mask, torch.ones(4, 3, dtype=torch.bool)], 1)
    return full, full_mask


def logits_of(tr: PPOTrainer, ids, mask, adapter: bool) -> torch.Tensor:
    m = tr.unwrapped
    with torch.no_grad():
        states = trunk.trunk_forward(m.policy, ids, mask, m.start_layer)
        if adapter:
            return m(states, mask, 0, with_values=False)[0]
        with m.policy.disable_adapter():
            return m(states, mask, 0, with_values=False)[0]


def test_first_minibatch_kl_zero_ratio_one(toy, tmp_path):
    tr = trainer(toy, tmp_path / "run")
    first = tr.train(stop_after=1)[0]
    assert first["objective/kl"] == 0.0  # a fresh LoRA (B = 0) is exactly the reference
    assert first["objective/non_score_reward"] == 0.0
    assert first["policy/first_ratio_dev"] < 1e-5  # rollout and training forwards agree
    assert first["policy/approx_kl"] > 0  # ...and later minibatches see the updated policy


def test_reference_never_changes(toy, tmp_path):
    tr = trainer(toy, tmp_path / "run", lr=1e-2, kl_stop=0.0)
    ids, mask = fixed_batch(tr)
    ref_before, pol_before = logits_of(tr, ids, mask, False), logits_of(tr, ids, mask, True)
    assert torch.equal(ref_before, pol_before)
    tr.train(stop_after=3)
    assert torch.equal(logits_of(tr, ids, mask, False), ref_before)
    assert (logits_of(tr, ids, mask, True) - pol_before).abs().max() > 1e-3  # the policy did move


# The bars of a rising toy reward (PPO here, RLOO in tests/test_rloo_loop.py), held at every seed of
# tests/test_seeds_slow.py (config seeds 0-5). Measured there (2026-12-01), end = mean of the last 3 of 10 updates:
#   end - first  PPO min/median/max 0.240/0.393/0.495, RLOO 0.287/0.388/0.511
#   end / first  PPO 1.44/2.52/2.86,                   RLOO 1.57/2.50/3.00
# The first update's reward ranges 0.20-0.55 over seeds, so the ratio is lowest where the start is highest: the
# earlier bars (0.2 and 1.5x, met at seed 0 with 0.40 and 2.8x) failed PPO at seed 2 (0.547 -> 0.787, 1.44x).
RISE_BAR, RATIO_BAR = 0.15, 1.3


def toy_rewards(toy, run_dir, seed: int = 0, **overrides) -> list[float]:
    """objective/reward of each of 10 updates on the toy task."""
    tr = trainer(toy, run_dir, updates=10, checkpoint_every=100, seed=seed, **overrides)
    return [h["objective/reward"] for h in tr.train()]


def check_reward_rose(rewards: list[float]) -> None:
    end = sum(rewards[-3:]) / 3
    assert end > rewards[0] + RISE_BAR and end > RATIO_BAR * rewards[0], rewards


def test_toy_reward_rises(toy, tmp_path):
    check_reward_rose(toy_rewards(toy, tmp_path / "run"))


def test_same_seed_same_numbers(toy, tmp_path):
    a = trainer(toy, tmp_path / "a").train(stop_after=2)
    b = trainer(toy, tmp_path / "b").train(stop_after=2)
    assert numbers(a) == numbers(b)
    c = trainer(toy, tmp_path / "c", seed=1).train(stop_after=2)
    assert numbers(c) != numbers(a)


def test_resume_after_kill_equals_uninterrupted(toy, tmp_path):
    full = trainer(toy, tmp_path / "full")
    history = full.train()  # 4 updates, checkpoints at 2 and 4

    killed = trainer(toy, tmp_path / "killed")
    killed.train(stop_after=2)  # "killed" right after the checkpoint of update 2
    del killed
    resumed = trainer(toy, tmp_path / "killed")
    assert resumed.resume(tmp_path / "killed") == 2
    history2 = resumed.train()
    assert numbers(history2) == numbers(history)
    for (n, p), (n2, p2) in zip(full.unwrapped.named_parameters(), resumed.unwrapped.named_parameters()):
        assert n == n2 and torch.equal(p, p2), n
    s1, s2 = full.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert s1.keys() == s2.keys()
    for k in s1:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(s1[k][name], s2[k][name])
    assert full.scheduler.state_dict() == resumed.scheduler.state_dict()


def test_nan_reward_stops_and_keeps_last_checkpoint(toy, tmp_path):
    _, _, target = toy
    good, calls = toy_score(target), []

    def flaky(messages, texts, ids, mask):
        calls.append(1)
        s = good(messages, texts, ids, mask)
        return s if len(calls) < 3 else s * float("nan")

    tr = trainer(toy, tmp_path / "run", score=flaky)
    with pytest.raises(TrainingStopped, match=r"reward is NaN.*update 3.*update-00002"):
        tr.train()
    ckpt = checkpoint.latest(tmp_path / "run")
    assert ckpt.name == "update-00002" and checkpoint.read_state(ckpt)["update"] == 2
    again = trainer(toy, tmp_path / "run")
    assert again.resume(tmp_path / "run") == 2


def test_kl_explosion_stops(toy, tmp_path):
    tr = trainer(toy, tmp_path / "run", lr=3e-2, kl_stop=0.5, updates=8, checkpoint_every=1)
    with pytest.raises(TrainingStopped, match=r"KL to the reference is .* above kl_stop 0.5"):
        tr.train()
    assert checkpoint.latest(tmp_path / "run").exists()


def test_value_model_on_the_reward_model(toy, tmp_path, tiny_model):
    """value_model rm: a LoRA adapter + score-head copy on the RM; the RM's own scores never change."""
    from rlhf.train import modeling
    from rlhf.train.ppo import rewards

    path, tok, _ = toy
    rm_dir = modeling.random_model("tiny", tmp_path / "rm", seed=3, num_labels=1)
    rm = modeling.load_model(str(rm_dir), task="reward")
    cfg = config(value_model="rm", reward_model=str(rm_dir), updates=2, lr=1e-2)
    torch.manual_seed(0)
    model = models.build(cfg, str(path), rm)
    score = rewards.reward_model_scorer(model.value_model, tok)
    texts = ["A short answer.", "Another answer that is a bit longer."]
    before = score(PROMPTS[:2], texts, None, None)
    tr = PPOTrainer(cfg, model, tok, PROMPTS, score, tmp_path / "run")
    history = tr.train()
    assert len(history) == 2 and history[1]["loss/value"] > 0
    assert torch.equal(score(PROMPTS[:2], texts, None, None), before)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("value_model" in n and "lora" in n for n in trained) and any("score.modules_to_save" in n for n in trained)


def test_qlora_policy_and_critic(toy, tmp_path):
    """mode qlora: 4-bit NF4 policy and RM (bitsandbytes' CPU fallback here) with LoRA adapters train."""
    from rlhf.train import modeling

    path, tok, target = toy
    rm_dir = modeling.random_model("tiny", tmp_path / "rm", seed=3, num_labels=1)
    cfg = config(mode="qlora", value_model="rm", reward_model=str(rm_dir), updates=2, lora_layers=1)
    torch.manual_seed(0)
    model = models.build(cfg, str(path), modeling.load_model(str(rm_dir), mode="qlora", task="reward"))
    assert type(trunk.decoder_of(model.policy).layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    history = PPOTrainer(cfg, model, tok, PROMPTS, toy_score(target), tmp_path / "run").train()
    assert history[0]["objective/kl"] == 0.0 and torch.isfinite(torch.tensor(history[1]["loss/value"]))


def test_split_forward_equals_model_forward(toy):
    """Trunk states from generation = a forward pass; trunk + top blocks = the model's own logits."""
    path, tok, _ = toy
    cfg = config(lora_layers=1, sample_dtype="float32")
    torch.manual_seed(0)
    model = models.build(cfg, str(path))
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)  # a non-trivial adapter
    assert model.start_layer == 1
    ids, mask = rollout.left_pad(rollout.encode_prompts(tok, PROMPTS[:3], 64), tok.pad_token_id)
    resp, states = rollout.sample(model, ids, mask, 6, 1.0, 1.0, tok.eos_token_id, tok.pad_token_id)
    seq, seq_mask = torch.cat([ids, resp], 1), torch.cat([mask, torch.ones_like(resp, dtype=torch.bool)], 1)
    with torch.no_grad():
        again = trunk.trunk_forward(model.policy, seq[:, :-1], seq_mask[:, :-1], 1)
        torch.testing.assert_close(states, again, atol=1e-5, rtol=1e-5)
        full = model.policy(input_ids=seq, attention_mask=seq_mask.long(), position_ids=trunk.position_ids_of(seq_mask)).logits
        split, _ = model(states, seq_mask[:, :-1], ids.shape[1] - 1)
        torch.testing.assert_close(split, full[:, ids.shape[1] - 1:-1].float(), atol=1e-4, rtol=1e-4)


def test_bf16_sampling_copy(toy, tmp_path):
    """sample_dtype bfloat16: rollouts sample from a bf16 copy whose adapter follows the policy's; log-probs stay float32."""
    tr = trainer(toy, tmp_path / "run", sample_dtype="bfloat16")
    m = tr.unwrapped
    assert m.sampler is not None and next(m.sampler.parameters()).dtype == torch.bfloat16
    assert m.sampler.get_input_embeddings().weight.data_ptr() != m.policy.get_input_embeddings().weight.data_ptr()
    history = tr.train(stop_after=2)
    assert history[0]["objective/kl"] == 0.0 and history[0]["policy/first_ratio_dev"] < 1e-5
    m.generator()  # syncs the copy
    sampler_params = dict(m.sampler.named_parameters())
    for name, p in m.policy.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(sampler_params[name].float(), p.float(), atol=1e-2, rtol=1e-2)
            assert not sampler_params[name].requires_grad
    assert all(n.startswith("policy.") or n.startswith("value_head") for n, p in m.named_parameters() if p.requires_grad)


def test_bad_settings_are_clear_errors(toy, tmp_path):
    with pytest.raises(RlhfError, match="divisible"):
        config(batch_size=6, num_minibatches=4).check()
    with pytest.raises(RlhfError, match="value_model rm needs a reward model"):
        config(value_model="rm", reward_model="rubric:concise_helpful").check()
    path, tok, target = toy
    same = type(tok).from_pretrained(path)
    same.pad_token = same.eos_token
    cfg = config()
    with pytest.raises(RlhfError, match="pad token distinct from EOS"):
        PPOTrainer(cfg, models.build(cfg, str(path)), same, PROMPTS, toy_score(target), tmp_path / "run")
    with pytest.raises(RlhfError, match="no training prompts"):
        PPOTrainer(cfg, models.build(cfg, str(path)), tok, [], toy_score(target), tmp_path / "run")


def test_config_fields_have_help():
    for f in dataclasses.fields(PPOStageConfig):
        assert f.metadata.get("help"), f.name


def responses(tok, raw) -> list[list[int]]:
    ids, mask, _ = tokens.truncate_after_eos(raw, tok.eos_token_id, tok.pad_token_id)
    return [row[m].tolist() for row, m in zip(ids, mask)]


def test_seeded_sampling_ignores_the_rest_of_the_batch(toy):
    """An episode's response depends on its prompt and seed only: not on its batch, its row or the prompts' padding
    (what lets any process sample any episode); other seeds give other responses; a near-zero temperature is greedy."""
    path, tok, _ = toy
    cfg = config()
    torch.manual_seed(0)
    model = models.build(cfg, str(path))
    prompts = [PROMPTS[0], PROMPTS[13], PROMPTS[2], [{"role": "user", "content": "Hi"}]]  # prompts of unequal length
    seeds = ranks.episode_seeds(0, 5, 0, 4)

    def draw(rows, seeds, temperature=1.0):
        ids, mask = rollout.left_pad(rollout.encode_prompts(tok, [prompts[i] for i in rows], 64), tok.pad_token_id)
        raw, _ = rollout.sample(model, ids, mask, 8, temperature, 1.0, tok.eos_token_id, tok.pad_token_id, seeds=seeds)
        return responses(tok, raw)

    together = draw([0, 1, 2, 3], seeds)
    assert draw([3, 1], [seeds[3], seeds[1]]) == [together[3], together[1]]
    assert draw([2], [seeds[2]]) == [together[2]]
    assert draw([0, 1, 2, 3], ranks.episode_seeds(1, 5, 0, 4)) != together
    ids, mask = rollout.left_pad(rollout.encode_prompts(tok, prompts, 64), tok.pad_token_id)
    greedy, _ = rollout.sample(model, ids, mask, 8, 1.0, 1.0, tok.eos_token_id, tok.pad_token_id, greedy=True)
    assert draw([0, 1, 2, 3], seeds, temperature=1e-4) == responses(tok, greedy)


def eos_a_quarter_of_the_time(tr: PPOTrainer) -> None:
    """Make the toy end a response with probability 1/4 at every step (at temperature 1): responses of many lengths."""
    eos = tr.tokenizer.eos_token_id

    def hook(module, args, out):
        others = out.clone()
        others[..., eos] = float("-inf")
        out = out.clone()
        out[..., eos] = torch.logsumexp(others, dim=-1) - math.log(3)
        return out

    tr.unwrapped.policy.get_base_model().get_output_embeddings().register_forward_hook(hook)


def test_micro_batches_do_not_change_the_update(toy, tmp_path):
    """Losses are token means over the whole minibatch (the rule that makes N processes equal one): cutting each
    minibatch into 2 micro-batches gives the same numbers up to rounding, with responses of unequal lengths.
    (Averaging the micro-batches' own means, as before, gives a short response's tokens more weight.)"""
    runs = []
    for accum in (1, 2):
        tr = trainer(toy, tmp_path / f"accum{accum}", grad_accum=accum, temperature=1.0, max_new_tokens=12)
        eos_a_quarter_of_the_time(tr)
        runs.append(tr.train(stop_after=1)[0])
    one, two = runs
    assert one["val/eos_fraction"] > 0.5 and one["val/mean_response_length"] < 8  # most ended early, at various lengths
    for k in ("objective/reward", "loss/policy", "loss/value", "policy/clipfrac", "policy/approx_kl", "policy/grad_norm"):
        assert abs(one[k] - two[k]) <= 1e-5, (k, one[k], two[k])


def test_doctests_of_the_many_process_rules():
    import doctest

    for module in (ranks, core):
        result = doctest.testmod(module)
        assert result.attempted and not result.failed, module.__name__

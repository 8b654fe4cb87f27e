"""Speed options must not change what is learned: the loss on a fixed batch is the same with and without them."""

from __future__ import annotations

import pytest
import torch

from rlhf.train import modeling


@pytest.fixture
def model_and_batch(tiny_model):
    torch.manual_seed(0)
    model = modeling.load_model(str(tiny_model), mode="full", dtype=torch.float32)
    model.train()
    lengths = [7, 12, 4]
    seqs = [torch.randint(5, 1000, (n,)) for n in lengths]
    return model, seqs


def padded_loss(model, seqs, pad_id=0):
    """Mean next-token loss over real tokens of a right-padded batch."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return model(input_ids=ids, attention_mask=mask, labels=labels).loss


def packed_loss(model, seqs):
    """The same rows packed into one padding-free row; position_ids restart per sequence (trl's padding_free)."""
    ids = torch.cat(seqs)[None]
    position_ids = torch.cat([torch.arange(len(s)) for s in seqs])[None]
    labels = torch.cat([torch.cat([torch.tensor([-100]), s[1:]]) for s in seqs])[None]  # no loss across boundaries
    # use_cache=False as trl's SFTTrainer.compute_loss sets it: with a cache object transformers 5.23 skips the
    # packed-sequence (block-diagonal) mask and rows would attend across their boundaries.
    return model(input_ids=ids, position_ids=position_ids, labels=labels, use_cache=False).loss


def test_padding_free_packing_gives_the_same_loss(model_and_batch):
    model, seqs = model_and_batch
    a, b = padded_loss(model, seqs), packed_loss(model, seqs)
    assert torch.allclose(a, b, atol=1e-5), (a.item(), b.item())


def test_trl_sft_disables_the_cache_in_training():
    """Packing is only exact with use_cache=False in training forwards (see packed_loss): trl must keep doing that."""
    import inspect

    from trl import SFTTrainer

    assert 'inputs["use_cache"] = False' in inspect.getsource(SFTTrainer.compute_loss)


def test_activation_checkpointing_gives_the_same_loss_and_grads(model_and_batch):
    model, seqs = model_and_batch
    loss_a = padded_loss(model, seqs)
    loss_a.backward()
    grads_a = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    loss_b = padded_loss(model, seqs)
    loss_b.backward()
    assert torch.allclose(loss_a, loss_b, atol=1e-6)
    for n, p in model.named_parameters():
        if n in grads_a:
            assert torch.allclose(grads_a[n], p.grad, atol=1e-5), n


def test_fused_logprobs_equal_log_softmax(model_and_batch):
    """PPO's fused cross-entropy log-probs equal log_softmax + gather on a real model's logits."""
    from rlhf.train.ppo.core import token_logprobs

    model, seqs = model_and_batch
    ids = torch.stack([s[:4] for s in seqs])
    logits = model(input_ids=ids).logits[:, :-1]
    full = torch.gather(torch.log_softmax(logits, dim=-1), -1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    fused = token_logprobs(logits, ids[:, 1:])
    assert torch.allclose(full, fused, atol=1e-5)


def test_fused_and_plain_adamw_take_the_same_step(model_and_batch):
    model, seqs = model_and_batch
    params = [torch.nn.Parameter(torch.randn(16, 16)) for _ in range(2)]
    clones = [torch.nn.Parameter(p.detach().clone()) for p in params]
    fused_ok = True
    try:
        opt_a = torch.optim.AdamW(params, lr=1e-2, fused=True)
    except (RuntimeError, TypeError):
        fused_ok = False
        opt_a = torch.optim.AdamW(params, lr=1e-2, foreach=True)
    opt_b = torch.optim.AdamW(clones, lr=1e-2, foreach=False)
    for p, c in zip(params, clones):
        g = torch.randn_like(p)
        p.grad, c.grad = g.clone(), g.clone()
    opt_a.step()
    opt_b.step()
    for p, c in zip(params, clones):
        assert torch.allclose(p, c, atol=1e-6), f"fused={fused_ok}"


def test_bf16_autocast_keeps_the_loss_within_rounding(model_and_batch):
    """precision=auto trains under bf16 autocast on CPUs with native bf16: same loss up to bf16 rounding (8 bits)."""
    model, seqs = model_and_batch
    with torch.no_grad():
        full = padded_loss(model, seqs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = padded_loss(model, seqs)
    assert low.dtype == torch.float32  # the loss itself is reduced in float32 under autocast
    assert abs(low.item() - full.item()) < 0.02 * full.item(), (full.item(), low.item())


def test_precision_choice():
    assert modeling.use_bf16("fp32") is False and modeling.use_bf16("bf16") is True
    if not torch.cuda.is_available():
        assert modeling.use_bf16("auto", mode="qlora") is False  # bitsandbytes' CPU path computes in float32
        assert modeling.use_bf16("auto") is modeling.cpu_has_native_bf16()
    with pytest.raises(Exception, match="--precision 'half'"):
        modeling.use_bf16("half")

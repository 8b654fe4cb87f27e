"""The QLoRA load path on a GPU (marked `gpu`: deselected by default, skipped without CUDA).

Run on a machine with CUDA and bitsandbytes: `just test -m gpu`. A random-init 135M-shaped model
(no weights needed) loads as 4-bit NF4 with double quantization and bf16 compute, gets LoRA on
every linear layer, and takes one training step with a finite loss and gradients only in LoRA.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (and bitsandbytes: pip install -e .[gpu])")]


def test_qlora_loads_nf4_double_quant_bf16_and_trains(tmp_path, builtin_cache):
    import bitsandbytes as bnb
    from peft import get_peft_model

    from rlhf.train import modeling

    path = modeling.random_model("135m", tmp_path / "m135", seed=0)
    model = modeling.load_model(str(path), mode="qlora", device_map={"": 0})
    four_bit = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(four_bit) == 30 * 7  # q, k, v, o, gate, up, down in each of the 30 blocks
    state = four_bit[0].weight.quant_state
    assert state.quant_type == "nf4" and state.nested  # double quantization: the scales are quantized too
    assert four_bit[0].compute_dtype == torch.bfloat16
    assert modeling.use_bf16("auto", mode="qlora")

    net = get_peft_model(model, modeling.lora_config(model, "CAUSAL_LM"))
    adapted = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in net.named_parameters() if ".lora_A" in n}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    ids = torch.randint(5, 1000, (2, 64), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    loss = net(input_ids=ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss)
    grads = [n for n, p in net.named_parameters() if p.grad is not None]
    assert grads and all("lora_" in n for n in grads)
    assert torch.cuda.max_memory_allocated() < 2 * 2**30  # a 135M model in 4 bits: well under 2 GiB


@pytest.fixture
def model_135m(tmp_path, builtin_cache):
    from rlhf.train import modeling

    return modeling.random_model("135m", tmp_path / "m135", seed=0)


QUICK = ["--mode", "qlora", "--epochs", "1", "--max-length", "128", "--report-to", "none", "--checkpoint-every", "0"]


def test_sft_stage_qlora_step(workspace, tmp_path, model_135m):
    """The SFT stage with a 4-bit NF4 base (double quant, bf16 compute) + LoRA: trains, saves an adapter, registers."""
    from stages import sft
    from tests.test_sft import sft_snapshot

    result = sft.main(["--model", str(model_135m), "--dataset", sft_snapshot(tmp_path), "--batch-size", "8",
                       "--samples", "1", "--sample-tokens", "4", *QUICK])
    assert result["model"] == "sft@v1" and result["eval_loss_after"] < result["eval_loss_before"]


def test_rm_stage_qlora_step(workspace, tmp_path, model_135m):
    from stages import rm
    from tests.test_rm import _toy_preferences

    result = rm.main(["--model", str(model_135m), "--dataset", _toy_preferences(tmp_path, n_prompts=16, n_heldout=4),
                      "--batch-size", "8", *QUICK])
    assert result["model"] == "rm@v1" and result["train_pairs"] == 24
    n = result["eval_pairs"]  # the accuracy is a share of the held-out pairs actually judged
    assert n > 0 and any(abs(result["accuracy"] - k / n) < 1e-9 for k in range(n + 1)), result


def test_ppo_stage_qlora_update(workspace, tmp_path, model_135m):
    from rlhf.data import registry
    from rlhf.data.ingest import import_prompts
    from rlhf.data.store import session_scope
    from rlhf.train import modeling
    from stages import ppo
    from tests.conftest import write_jsonl

    rows = [{"id": f"t{i}", "messages": [{"role": "user", "content": f"Tip {i} for keeping basil fresh?"}],
             "tags": ["heldout"] if i < 2 else []} for i in range(10)]
    with session_scope() as s:
        import_prompts(s, write_jsonl(tmp_path / "prompts.jsonl", rows))
        prompts = registry.snapshot(s, "prompts")[0].ref
    rm_path = modeling.random_model("135m", tmp_path / "rm135", seed=1, num_labels=1)
    result = ppo.main(["--policy", str(model_135m), "--reward-model", str(rm_path), "--prompts", prompts, "--mode", "qlora",
                       "--updates", "1", "--batch-size", "4", "--num-minibatches", "2", "--ppo-epochs", "1",
                       "--max-new-tokens", "8", "--report-to", "none"])
    assert result["model"] == "ppo@v1" and result["updates"] == 1

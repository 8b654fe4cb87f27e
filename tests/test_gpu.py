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

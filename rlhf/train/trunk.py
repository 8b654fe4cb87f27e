"""A decoder split in two: the frozen *trunk* (blocks below the first one with LoRA) and the trained *top*.

LoRA on the top N blocks only means the blocks below carry no adapter: their output (the trunk states) is the
same for every forward of a training run, so it is computed once and every later forward and backward runs only
the top blocks. PPO takes the trunk states from generation (rlhf.train.ppo); the listwise reward-model trainer
computes them once per response (rlhf.train.listwise). `top_forward(trunk_forward(x))` equals the model's own
forward (tests/test_ppo_loop.py checks it).

Shapes: B sequences, L tokens (right- or left-padded), H hidden size.
"""

from __future__ import annotations

import torch
from torch import nn

from rlhf.errors import RlhfError
from rlhf.train.modeling import first_lora_layer


def decoder_of(model) -> nn.Module:
    """The transformer body (`model.model` for Llama-like models) under a causal-LM or classifier head."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(base, base.base_model_prefix, None)
    for part in ("embed_tokens", "layers", "norm", "rotary_emb"):
        if not hasattr(body, part):
            raise RlhfError(f"{type(base).__name__}: splitting a model into trunk and top needs a Llama-like decoder (embed_tokens, layers, norm, rotary_emb); "
                            f"this model has no {part!r}")
    return body


def num_layers(model) -> int:
    return len(decoder_of(model).layers)


def first_adapted_layer(model, lora_layers: int) -> int:
    """Index of the first block that carries LoRA: everything below it is the shared, frozen trunk."""
    return first_lora_layer(num_layers(model), lora_layers)


def position_ids_of(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) positions counted over real tokens, as `generate` does for left-padded prompts."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _blocks(decoder, hidden: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, layers) -> torch.Tensor:
    """Run `layers` of `decoder` on `hidden` exactly as the model's own forward does (Llama-family code path)."""
    from transformers.masking_utils import create_causal_mask

    mask = create_causal_mask(config=decoder.config, inputs_embeds=hidden, attention_mask=attention_mask,
                              past_key_values=None, position_ids=position_ids)
    position_embeddings = decoder.rotary_emb(hidden, position_ids=position_ids)
    for layer in layers:
        hidden = layer(hidden, attention_mask=mask, position_embeddings=position_embeddings, position_ids=position_ids)
    return hidden


def trunk_forward(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, start_layer: int) -> torch.Tensor:
    """(B, L, H) states entering block `start_layer` (the embeddings when it is 0)."""
    decoder = decoder_of(model)
    hidden = decoder.embed_tokens(input_ids)
    if start_layer == 0:
        return hidden
    return _blocks(decoder, hidden, attention_mask, position_ids_of(attention_mask), decoder.layers[:start_layer])


def top_forward(model, trunk: torch.Tensor, attention_mask: torch.Tensor, start_layer: int) -> torch.Tensor:
    """(B, L, H) final (normed) hidden states from the trunk states entering block `start_layer`."""
    decoder = decoder_of(model)
    hidden = _blocks(decoder, trunk, attention_mask, position_ids_of(attention_mask), decoder.layers[start_layer:])
    return decoder.norm(hidden)

"""The PPO actor-critic: a LoRA policy, its value function, and the frozen trunk they share.

Memory (Huang et al. 2024; the design doc): the reference policy is the policy with its LoRA
adapter disabled (`with policy.disable_adapter():`), never a second copy of the weights.

Speed (ours): generation, the costliest part of a CPU rollout, runs on a bfloat16 copy of the policy
where the CPU multiplies bf16 natively (AVX512-BF16/AMX: ~2x the fp32 matmul rate); its LoRA weights
are copied from the policy before every rollout, and log-probs are then recomputed in float32 (the
samples are from the bf16 copy: as with a separate inference engine, a rounding-level mismatch).

LoRA goes on the top `lora_layers` transformer blocks only. The blocks below carry
no adapter, so their output, the *trunk states*, is the same for the policy, the reference and
every PPO epoch of an update. It is taken once per rollout from generation (which computed it
anyway) and every later forward and backward runs only the top blocks, from the trunk states up.
With `lora_layers = 0` every block is adapted and the trunk is the embedding layer.

Shapes: B episodes, L tokens (prompt + response, left-padded prompt), H hidden size, V vocabulary.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from rlhf.errors import RlhfError
from rlhf.train.modeling import add_lora, cpu_has_native_bf16, low_precision_copy
from rlhf.train.trunk import first_adapted_layer, top_forward


class PolicyValue(nn.Module):
    """The policy and its value function in one module: one forward gives next-token logits and values,
    and `accelerate` (DDP) sees a single model.

    value_model "policy_head": a linear value head on the policy's last hidden state (zero-init, so
    V = 0 at the start); the cheapest critic, sharing the policy's adapted blocks (trl's old
    `AutoModelForCausalLMWithValueHead`). Otherwise `value_model` is a sequence classifier (the RM)
    with its own LoRA adapter and a trainable copy of its score head, read at every token: the critic
    starts from the reward model (Huang et al. 2024, "initialize the value model from the RM").
    """

    def __init__(self, policy, lora_layers: int, value_model=None, value_lora_layers: int | None = None, sampler=None):
        super().__init__()
        self.policy = policy
        self.sampler = sampler  # a frozen low-precision copy of the policy used for sampling, or None
        self.start_layer = first_adapted_layer(policy, lora_layers)
        self.value_model = value_model
        self.value_start_layer = None
        self.value_head = None
        if value_model is None:
            self.value_head = nn.Linear(policy.config.hidden_size, 1, dtype=torch.float32)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
        else:
            self.value_start_layer = first_adapted_layer(value_model, lora_layers if value_lora_layers is None else value_lora_layers)

    def generator(self, fast: bool = True):
        """The model to sample from: the low-precision copy (its adapter synced first) if there is one and `fast`."""
        if fast and self.sampler is not None:
            self.sync_sampler()
            return self.sampler
        return self.policy

    def sync_sampler(self) -> None:
        """Copy the policy's LoRA weights into the sampling copy (same module names, cast to its dtype)."""
        target = dict(self.sampler.named_parameters())
        with torch.no_grad():
            for name, p in self.policy.named_parameters():
                if p.requires_grad:
                    target[name].copy_(p)

    @contextlib.contextmanager
    def adapter_disabled(self):
        """The reference (SFT) policy: every copy of the policy with its adapter disabled."""
        with contextlib.ExitStack() as stack:
            for m in (self.policy, self.sampler):
                if m is not None:
                    stack.enter_context(m.disable_adapter())
            yield

    @property
    def shares_trunk(self) -> bool:
        """True when the values come from the policy's own states (no separate value trunk needed)."""
        return self.value_model is None

    def forward(self, trunk: torch.Tensor, attention_mask: torch.Tensor, start: int, value_trunk: torch.Tensor | None = None,
                with_values: bool = True, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and values from position `start` on.

        Args:
            trunk: (B, L, H) policy trunk states (entering block `start_layer`).
            attention_mask: (B, L) 1 = real token.
            start: first position kept (the last prompt token: its logits predict the first response token).
            value_trunk: (B, L, H') the value model's trunk states (value_model != policy_head only).
            with_values: compute the values (False for the reference pass).
            temperature: logits are divided by it, computed as head(hidden / temperature): the LM head is
                linear without bias, so that is the same up to rounding on an H- rather than V-wide tensor.

        Returns:
            logits: (B, L - start, V) next-token logits / temperature (float32).
            values: (B, L - start) V(s_t) or None.
        """
        hidden = top_forward(self.policy, trunk, attention_mask, self.start_layer)[:, start:]  # (B, T, H)
        head = self.policy.get_base_model().get_output_embeddings()
        if temperature != 1.0 and getattr(head, "bias", None) is None:
            logits = head(hidden / temperature).float()
        else:
            logits = head(hidden).float() / temperature
        values = None
        if with_values:
            if self.value_head is not None:
                values = self.value_head(hidden.float()).squeeze(-1)
            else:
                if value_trunk is None:
                    raise RlhfError("PolicyValue: the value model needs its trunk states (value_trunk)")
                vh = top_forward(self.value_model, value_trunk, attention_mask, self.value_start_layer)[:, start:]
                values = self.value_model.get_base_model().score(vh).float().squeeze(-1)
        return logits, values


def build(cfg, policy, reward_model=None) -> PolicyValue:
    """The PPO model for a stage config: the policy (a loaded causal LM or a model spec) with a fresh LoRA
    adapter, and the critic (`cfg.value_model`): a value head, or a LoRA adapter "value" on `reward_model`."""
    from rlhf.train import modeling

    if isinstance(policy, (str, modeling.ResolvedModel)):
        policy = modeling.load_model(policy, mode="qlora" if cfg.mode == "qlora" else "full")
    if cfg.mode == "qlora":
        from peft import prepare_model_for_kbit_training

        policy = prepare_model_for_kbit_training(policy, use_gradient_checkpointing=False)
    sampler = None
    if sampling_dtype(cfg, policy) is not None:
        sampler = add_lora(low_precision_copy(policy, torch.bfloat16), "CAUSAL_LM", cfg.lora_r, cfg.lora_alpha,
                           cfg.lora_layers, adapter_dtype_as_base=True)
        sampler.requires_grad_(False)
    policy = add_lora(policy, "CAUSAL_LM", cfg.lora_r, cfg.lora_alpha, cfg.lora_layers)
    value_model = None
    if cfg.value_model == "rm":
        if reward_model is None or not hasattr(reward_model, "score"):
            raise RlhfError("value_model rm needs a sequence-classifier reward model (with a `score` head) to start from")
        value_model = add_lora(reward_model, "SEQ_CLS", cfg.lora_r, cfg.lora_alpha, cfg.lora_layers, adapter_name="value")
    elif reward_model is not None and hasattr(reward_model, "parameters"):
        reward_model.requires_grad_(False)
    return PolicyValue(policy, cfg.lora_layers, value_model, sampler=sampler)


def sampling_dtype(cfg, policy):
    """torch.bfloat16 when rollouts should sample from a bf16 copy of a float32 policy, else None."""
    if cfg.sample_dtype == "float32" or cfg.mode == "qlora" or next(policy.parameters()).dtype != torch.float32:
        return None
    if cfg.sample_dtype == "bfloat16" or (not torch.cuda.is_available() and cpu_has_native_bf16()):
        return torch.bfloat16
    return None

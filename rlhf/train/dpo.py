"""Direct Preference Optimization components: the stage config and the policy to train.

DPO (Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model is Secretly a Reward
Model", https://arxiv.org/abs/2305.18290) fits the policy to (chosen, rejected) pairs directly, with the
loss -log sigmoid(beta * [(log pi(y_c|x) - log pi_ref(y_c|x)) - (log pi(y_r|x) - log pi_ref(y_r|x))]):
no reward model and no sampling during training. trl's `DPOTrainer` computes it; with a LoRA policy the
reference is the same weights with the adapter disabled (trl's null-ref context), never a second copy.

The trained policy is judged exactly as PPO and RLOO are (`rlhf.train.ppo.evaluate`, the fields of
`PolicyEvalFields`): greedy answers to the held-out prompts scored by the reward model and the rubric, the
KL to the SFT policy on its own samples, length, EOS rate and the win rate over SFT with a 95% interval.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhf.config import field
from rlhf.errors import RlhfError
from rlhf.train.ppo.config import PolicyEvalFields
from rlhf.train.stage import TrainerFields

DPO_MODES = ("lora", "qlora")
LOSS_TYPES = ("sigmoid", "ipo", "hinge")


@dataclass
class DPOStageConfig(TrainerFields, PolicyEvalFields):
    """Fine-tune a policy on a preferences snapshot with DPO (trl DPOTrainer, LoRA, adapter-disabled reference).
    (Shared fields come first: rlhf.train.stage.TrainerFields, rlhf.train.ppo.config.PolicyEvalFields.)"""

    # Model
    policy: str = field("sft@latest", "policy to start from, also the reference: NAME@vN, a local folder or the built-in name")
    reward_model: str = field("rm@latest", "reward model for the held-out evaluation only (DPO trains without one); "
                                           "rubric:NAME to score with a rubric")
    mode: str = field("lora", "lora | qlora (4-bit NF4 base + LoRA; for a GPU)", DPO_MODES)
    lora_layers: int = field(0, "LoRA on the top N transformer blocks only (0 = all)")
    # Data
    dataset: str = field("preferences@latest", "preferences snapshot: prompt/chosen/rejected; held-out prompts never train")
    prompts: str = field("prompts@latest", "prompts snapshot whose 'heldout' split the policy is evaluated on")
    max_length: int = field(256, "longest prompt + answer in tokens (trl truncates longer pairs from the end)")
    max_prompt_length: int = field(256, "evaluation: longer prompts keep their last N tokens")
    # DPO
    beta: float = field(0.1, "beta: strength of the implicit KL constraint to the reference (Rafailov et al. 2023)")
    loss_type: str = field("sigmoid", "sigmoid = DPO | ipo (Azar et al. 2023) | hinge (SLiC)", LOSS_TYPES)
    # Optimization
    epochs: float = field(1.0, "passes over the training pairs")
    batch_size: int = field(8, "pairs per device step")
    lr: float = field(5e-5, "peak learning rate (cosine decay)")
    warmup_steps: int = field(5, "linear warm-up steps")
    seed: int = field(0, "seeds python, numpy, torch, the LoRA init and the data order")
    # Generation (evaluation)
    max_new_tokens: int = field(48, "answer budget in tokens when evaluating")
    temperature: float = field(0.7, "sampling temperature of the KL estimate's samples")
    top_p: float = field(1.0, "nucleus sampling of the KL estimate's samples")
    # Output
    name: str = field("dpo", "registered model name: the result is NAME@vN")

    def check(self) -> None:
        if self.beta <= 0:
            raise RlhfError(f"beta {self.beta}: must be > 0")
        if self.temperature <= 0:
            raise RlhfError(f"temperature {self.temperature}: must be > 0")


def preference_rows(ds):
    """(train, held-out count): the snapshot's pairs in trl's conversational prompt/chosen/rejected shape, the pairs on
    held-out prompts left out (the policy is judged on those prompts)."""
    train = ds.filter(lambda r: r["split"] != "heldout")
    if len(train) == 0:
        raise RlhfError("the preferences snapshot has no pairs outside the held-out prompts: nothing to train on")
    return train.select_columns(["prompt", "chosen", "rejected"]), len(ds) - len(train)


def build_policy(cfg: DPOStageConfig, resolved):
    """The starting policy with a fresh LoRA adapter on its top `lora_layers` blocks (its reference: the adapter
    disabled), 4-bit base for qlora."""
    from rlhf.train import modeling

    model = modeling.load_model(resolved, mode=cfg.mode)
    if cfg.mode == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.activation_checkpointing)
    return modeling.add_lora(model, "CAUSAL_LM", cfg.lora_r, cfg.lora_alpha, cfg.lora_layers)

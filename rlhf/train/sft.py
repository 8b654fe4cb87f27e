"""Supervised fine-tuning components: the stage config and the model/data setup the recipe calls."""

from __future__ import annotations

from dataclasses import dataclass

from rlhf.config import field
from rlhf.train.modeling import BUILTIN, MODES, PRECISIONS
from rlhf.train.training import TRACKING_CHOICES


@dataclass
class SFTStageConfig:
    """Fine-tune a causal LM on approved demonstrations (loss on the answer tokens only)."""

    # Model
    model: str = field(BUILTIN, "base model: the built-in name, a local HF folder, or NAME@vN")
    mode: str = field("lora", "lora | full | head (only the output head trains) | qlora (4-bit NF4 + LoRA)", MODES)
    lora_r: int = field(16, "LoRA rank (lora, qlora)")
    lora_alpha: int = field(32, "LoRA alpha (scale = alpha / r)")
    # Data
    dataset: str = field("sft@latest", "registry snapshot to train on (train split); its heldout split is the eval set")
    max_length: int = field(512, "longest prompt + answer in tokens; longer examples are truncated")
    # Optimization
    epochs: float = field(3.0, "passes over the training split")
    batch_size: int = field(8, "examples per device step")
    grad_accum: int = field(1, "steps accumulated per optimizer update")
    lr: float = field(2e-4, "peak learning rate (cosine decay); 2e-4 suits LoRA, use ~2e-5 for full")
    warmup_steps: int = field(0, "linear warm-up steps")
    packing: bool = field(False, "pack examples into max_length rows (padding-free, BFD)")
    activation_checkpointing: bool = field(False, "recompute activations to save memory (slower)")
    precision: str = field("auto", "bf16 autocast: auto (GPU, or a CPU with native bf16; never qlora on CPU) | bf16 | fp32",
                           PRECISIONS)
    seed: int = field(0, "seeds python, numpy, torch and the data order")
    # Output
    name: str = field("sft", "registered model name: the result is NAME@vN")
    samples: int = field(3, "held-out prompts answered greedily before and after training")
    sample_tokens: int = field(48, "max new tokens per sample answer")
    logging_steps: int = field(5, "log training metrics every N optimizer steps")
    report_to: str = field("trackio", "experiment tracking backend", TRACKING_CHOICES)


def split_datasets(ds, columns=("prompt", "completion")):
    """(train, heldout) from a snapshot with a `split` column; only the trainer's columns are kept."""
    from rlhf.errors import RlhfError

    train = ds.filter(lambda r: r["split"] != "heldout")
    heldout = ds.filter(lambda r: r["split"] == "heldout")
    if len(train) == 0:
        raise RlhfError("the snapshot has no training rows (all are held out)")
    if len(heldout) == 0:
        raise RlhfError("the snapshot has no held-out rows to evaluate on: tag some prompts 'heldout'")
    keep = list(columns)
    return train.select_columns(keep), heldout.select_columns(keep), heldout


def build_model(cfg: SFTStageConfig, resolved):
    """The model to train and the peft config to wrap it with (None for full and head modes)."""
    from rlhf.train import modeling

    model = modeling.load_model(resolved, mode=cfg.mode)
    peft_config = None
    if cfg.mode in ("lora", "qlora"):
        peft_config = modeling.lora_config("CAUSAL_LM", r=cfg.lora_r, alpha=cfg.lora_alpha)
        if cfg.mode == "qlora":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.activation_checkpointing)
    elif cfg.mode == "head":
        modeling.freeze_all_but_head(model, "lm_head")
    return model, peft_config

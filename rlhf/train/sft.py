"""Supervised fine-tuning components: the stage config and the model/data setup the recipe calls."""

from __future__ import annotations

from dataclasses import dataclass

from rlhf.config import field
from rlhf.train.modeling import BUILTIN, MODES
from rlhf.train.stage import TrainerFields


@dataclass
class SFTStageConfig(TrainerFields):
    """Fine-tune a causal LM on approved demonstrations (loss on the answer tokens only).
    (The fields the RM stage shares come first: rlhf.train.stage.TrainerFields.)"""

    # Model
    model: str = field(BUILTIN, "base model: the built-in name, a local HF folder, or NAME@vN")
    mode: str = field("lora", "lora | full | head (only the output head trains) | qlora (4-bit NF4 + LoRA)", MODES)
    # Data
    dataset: str = field("sft@latest", "registry snapshot to train on (train split); its heldout split is the eval set")
    max_length: int = field(512, "longest prompt + answer in tokens; longer examples are truncated")
    # Optimization
    epochs: float = field(3.0, "passes over the training split")
    batch_size: int = field(8, "examples per device step")
    lr: float = field(2e-4, "peak learning rate (cosine decay); 2e-4 suits LoRA, use ~2e-5 for full")
    warmup_steps: int = field(0, "linear warm-up steps")
    packing: bool = field(False, "pack examples into max_length rows (padding-free, BFD)")
    seed: int = field(0, "seeds python, numpy, torch and the data order")
    # Output
    name: str = field("sft", "registered model name: the result is NAME@vN")
    samples: int = field(3, "held-out prompts answered greedily before and after training")
    sample_tokens: int = field(48, "max new tokens per sample answer")


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
    return modeling.prepare_for_training(model, cfg.mode, "CAUSAL_LM", cfg.lora_r, cfg.lora_alpha,
                                         activation_checkpointing=cfg.activation_checkpointing)


def heldout_loss(trainer) -> float:
    """The mean loss on the trainer's held-out rows, computed on this process alone (the stage calls it on the main
    process), as `Trainer.evaluate` computes it: each batch's mean loss over its answer tokens, weighted by the
    batch's rows, under the trainer's autocast. `Trainer.evaluate` itself would split the rows across processes."""
    import torch

    from rlhf.train.modeling import eval_mode

    model, rows, collate = trainer.model, trainer.eval_dataset, trainer.data_collator
    size = trainer.args.per_device_eval_batch_size
    device = next(model.parameters()).device
    keys = ("input_ids", "attention_mask", "position_ids", "labels")
    total = 0.0
    with eval_mode(model), torch.no_grad(), trainer.autocast_smart_context_manager():
        for start in range(0, len(rows), size):
            examples = [rows[i] for i in range(start, min(start + size, len(rows)))]
            batch = {k: v.to(device) for k, v in collate(examples).items() if k in keys}
            total += model(**batch, use_cache=False).loss.float().item() * len(examples)
    return total / len(rows)

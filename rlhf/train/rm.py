"""Reward-model stage components: the stage config and the model to train.

A reward model r(x, y) is a sequence classifier with one output (`num_labels=1`) read at the last
token of the chat-formatted prompt x + answer y. It is trained on (chosen, rejected) pairs with the
Bradley-Terry loss -log sigmoid(r(x, y_c) - r(x, y_r)) (InstructGPT, Ouyang et al. 2022, eq. 1) by
trl's `RewardTrainer`. trl drops pairs longer than `max_length`; the stage hands it pre-tokenized
`chosen_ids`/`rejected_ids` instead (`rlhf.train.reward.tokenize_pairs`: prompts cut from the left).
Reading a reward model (scores, evaluation) is `rlhf.train.reward`.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhf.config import field
from rlhf.errors import RlhfError
from rlhf.train.modeling import MODES
from rlhf.train.preferences import LABELS
from rlhf.train.stage import TrainerFields


TRAINERS = ("trl", "listwise")


@dataclass
class RMStageConfig(TrainerFields):
    """Train a reward model on a preferences snapshot (Bradley-Terry loss, trl RewardTrainer).
    (The fields the SFT stage shares come first: rlhf.train.stage.TrainerFields.)"""

    # Model
    model: str = field("sft@latest", "base model: an SFT version NAME@vN, the built-in name, or a local HF folder")
    mode: str = field("lora", "lora | full | head (only the reward head trains) | qlora (4-bit NF4 + LoRA)", MODES)
    lora_layers: int = field(0, "LoRA on the top N transformer layers only (0 = all): backward stops there, faster on CPU")
    keep_layers: int = field(0, "keep only the bottom N transformer layers of the base (0 = all): a shallower, faster RM")
    trainer: str = field("trl", "trl = RewardTrainer, one pair per row, hard labels | listwise = every answer of a prompt "
                                "scored once per step with all its pairs (InstructGPT), soft labels, frozen trunk cached "
                                "(rlhf.train.listwise)", TRAINERS)
    labels: str = field("hard", "listwise: hard = majority vote | soft = vote fraction | weighted = votes weighted by "
                                "annotator reliability (rlhf.train.preferences)", LABELS)
    prompts_per_step: int = field(4, "listwise: prompts (each with all its answers) per optimizer step")
    length_debias: bool = field(False, "listwise: fit the labels' linear length trend with a separate weight during "
                                       "training and keep the reward without it (rlhf.train.listwise)")
    # Data
    dataset: str = field("preferences@latest", "preferences snapshot: prompt/chosen/rejected conversations")
    max_length: int = field(256, "longest prompt + answer in tokens; longer prompts are cut from the left, answers never")
    eval_fraction: float = field(0.2, "share of prompts held out when the snapshot has no heldout split (prompt-disjoint)")
    rubric: str = field("", "rubric to measure accuracy against (default: the one the simulated annotators in the data used)")
    # Optimization
    epochs: float = field(1.0, "passes over the training pairs")
    batch_size: int = field(8, "pairs per device step (2x sequences: chosen + rejected)")
    eval_batch_size: int = field(32, "responses per forward pass when scoring")
    lr: float = field(3e-4, "peak learning rate (cosine decay); ~3e-4 for LoRA, ~1e-5 for full, ~1e-3 for head")
    warmup_steps: int = field(5, "linear warm-up steps")
    center_rewards_coefficient: float = field(0.01, "weight of mean(r^2), keeps rewards near 0 (Eisenstein et al. 2023, eq. 2); 0 = off")
    seed: int = field(0, "seeds python, numpy, torch, the head init, the data order and the eval split")
    # Output
    name: str = field("rm", "registered model name: the result is NAME@vN")


def truncate_layers(model, keep: int) -> None:
    """Keep the bottom `keep` decoder layers (and the final norm + head): the saved config says so, so it reloads as is."""
    layers = model.model.layers
    if not 0 < keep <= len(layers):
        raise RlhfError(f"--keep-layers {keep}: the model has {len(layers)} layers")
    model.model.layers = layers[:keep]
    model.config.num_hidden_layers = keep
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:keep]


def build_model(cfg: RMStageConfig, resolved):
    """(model with one reward output, peft config or None); `head` freezes everything but the `score` head."""
    from rlhf.train import modeling

    if cfg.mode == "qlora" and cfg.keep_layers:
        raise RlhfError(f"--mode qlora saves a LoRA adapter for the unchanged base, which --keep-layers {cfg.keep_layers} "
                        "would not match: use --keep-layers 0 with qlora")
    model = modeling.load_model(resolved, mode=cfg.mode, task="reward", num_labels=1)
    if cfg.keep_layers:
        truncate_layers(model, cfg.keep_layers)
    if cfg.trainer == "listwise":  # train_listwise adds the adapter itself
        if cfg.mode == "qlora":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.activation_checkpointing)
        return model, None
    return modeling.prepare_for_training(model, cfg.mode, "SEQ_CLS", cfg.lora_r, cfg.lora_alpha, cfg.lora_layers,
                                         cfg.activation_checkpointing)


def undo_bf16_on_cpu(model) -> None:
    """trl casts the trainable parameters of a 4-bit model to bfloat16 (for GPU autocast); a CPU run has no
    autocast, so put them back to float32, the dtype the dequantized activations have there."""
    import torch

    if torch.cuda.is_available():
        return
    for p in model.parameters():
        if p.requires_grad and p.dtype == torch.bfloat16:
            p.data = p.data.float()


def gold_counts(lineage: dict) -> dict[str, tuple[int, int]]:
    """Annotator -> (gold correct, gold answered) from a preferences snapshot's lineage (the app's gold items).

    >>> gold_counts({"annotator_quality": {"ana": {"gold_correct": 3, "gold_answered": 4}, "bo": {"gold_answered": 0}}})
    {'ana': (3, 4)}
    """
    out = {}
    for name, q in (lineage or {}).get("annotator_quality", {}).items():
        if q.get("gold_answered"):
            out[name] = (int(q.get("gold_correct") or 0), int(q["gold_answered"]))
    return out


def check(cfg: RMStageConfig) -> None:
    """Settings that cannot work together, in words."""
    if cfg.trainer == "listwise" and cfg.mode not in ("lora", "qlora"):
        raise RlhfError(f"--trainer listwise trains a LoRA adapter: use --mode lora or qlora (got {cfg.mode})")
    if cfg.labels != "hard" and cfg.trainer != "listwise":
        raise RlhfError(f"--labels {cfg.labels} needs --trainer listwise (trl's RewardTrainer takes hard labels only)")


@dataclass
class Fitted:
    """What training gives the recipe, whichever trainer ran."""

    model: object  # the trained model (a peft model for lora/qlora)
    log_history: list[dict]  # per logged step: loss, accuracy, ...
    train_seconds: float
    train_pairs: int
    extra: dict  # trainer-specific metrics (listwise: prompt groups, labels, annotator reliability)


def fit(cfg: RMStageConfig, run, model, peft_config, tokenizer, train_rows, gold: dict | None = None) -> Fitted:
    """Train the reward model on the training pairs with `cfg.trainer`: trl's RewardTrainer (one pair per row,
    hard labels, checkpoints and --resume, several processes) or `rlhf.train.listwise` (one prompt's answers per
    batch element, all its pairs, hard/soft/weighted labels, one process). `gold`: annotator -> (correct, answered)
    gold items, added to the agreement counts behind `weighted` labels."""
    if cfg.trainer == "listwise":
        return _fit_listwise(cfg, model, tokenizer, train_rows, gold)
    return _fit_trl(cfg, run, model, peft_config, tokenizer, train_rows)


def _fit_trl(cfg: RMStageConfig, run, model, peft_config, tokenizer, train_rows) -> Fitted:
    from trl import RewardConfig, RewardTrainer

    from rlhf.train import distributed, resume, stage
    from rlhf.train.reward import tokenize_pairs

    tokenized = tokenize_pairs(train_rows, tokenizer, cfg.max_length)  # prompts cut from the left: trl drops nothing
    distributed.say(f"tokens: {sum(tokenized['truncated'])} of {len(tokenized)} pairs had their prompt cut from the left "
                    f"to {cfg.max_length} tokens")
    train_ds = tokenized.select_columns(["chosen_ids", "rejected_ids"])
    args = RewardConfig(**stage.trainer_args(cfg, run.dir), disable_dropout=True,
                        center_rewards_coefficient=cfg.center_rewards_coefficient or None)
    trainer = RewardTrainer(model=model, args=args, train_dataset=train_ds, processing_class=tokenizer, peft_config=peft_config,
                            callbacks=[resume.CheckpointCallback(run)])
    distributed.check_even_split(len(train_ds), cfg.batch_size, distributed.num_processes())
    if cfg.mode == "qlora":
        undo_bf16_on_cpu(trainer.model)
    distributed.say(f"model: {cfg.model} ({cfg.mode}, trl RewardTrainer): {stage.params(trainer.model)}")
    out = trainer.train(resume_from_checkpoint=resume.checkpoint_to_resume(run))
    return Fitted(trainer.model, trainer.state.log_history, out.metrics.get("train_runtime", 0.0), len(train_ds),
                  {"train_loss": resume.train_loss(trainer.state.log_history)})


def _fit_listwise(cfg: RMStageConfig, model, tokenizer, train_rows, gold: dict | None = None) -> Fitted:
    import time

    from rlhf.train import distributed, listwise, modeling, stage
    from rlhf.train.preferences import annotator_reliability, prompt_groups, reliability_weights

    if distributed.num_processes() > 1:
        raise RlhfError("--trainer listwise runs on one process: drop --processes, or use --trainer trl")
    reliability = annotator_reliability(train_rows, gold)
    groups = prompt_groups(train_rows, cfg.labels, reliability_weights(reliability))
    model = modeling.add_lora(model, "SEQ_CLS", cfg.lora_r, cfg.lora_alpha, cfg.lora_layers)
    distributed.say(f"model: {cfg.model} ({cfg.mode}, listwise, labels {cfg.labels}): {stage.params(model)}; "
                    f"{len(groups)} prompts, {sum(len(g.pairs) for g in groups)} judged pairs")
    settings = listwise.Settings(epochs=cfg.epochs, prompts_per_step=cfg.prompts_per_step, lr=cfg.lr,
                                 warmup_steps=cfg.warmup_steps, center_rewards_coefficient=cfg.center_rewards_coefficient,
                                 max_length=cfg.max_length, seed=cfg.seed, length_debias=cfg.length_debias,
                                 bf16=modeling.use_bf16(cfg.precision, cfg.mode))
    t0 = time.time()
    history = listwise.train(model, tokenizer, groups, cfg.lora_layers, settings)
    return Fitted(model, history, round(time.time() - t0, 1), sum(len(g.pairs) for g in groups),
                  {"train_loss": sum(h["loss"] for h in history) / len(history), "prompt_groups": len(groups),
                   "labels": cfg.labels, "length_weight": history[-1]["length_weight"],
                   "annotator_reliability": {k: round(v, 4) for k, v in reliability.items()},
                   "gold_items_used": sum(n for _, n in (gold or {}).values())})

"""The PPO stage config: one dataclass, one help line per field (`python -m stages.ppo --help`).

Defaults follow Huang et al. 2024 ("The N+ Implementation Details of RLHF with PPO") where they
apply; `data/configs/ppo.yaml` holds the values tuned for the built-in model on a 2-core CPU.

Batch arithmetic: each update samples `batch_size` episodes, then runs `ppo_epochs` passes over
them in `num_minibatches` minibatches (one optimizer step each), every minibatch split into
`grad_accum` micro-batches: micro-batch = batch_size / num_minibatches / grad_accum episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhf.config import field
from rlhf.errors import RlhfError

VALUE_MODELS = ("rm", "policy_head")


@dataclass
class PolicyEvalFields:
    """How a trained policy is judged against its starting (SFT) policy on the held-out prompts: the same for
    PPO, RLOO and DPO (rlhf.train.ppo.evaluate), so their numbers go in one table."""

    # Evaluation
    rubric: str = field("concise_helpful", "gold judge of held-out answers: a shipped rubric or path/to/file.py:function")
    eval_prompts: int = field(0, "held-out prompts to evaluate on (0 = all)")
    eval_batch_size: int = field(20, "held-out prompts per generate call")
    eval_greedy: bool = field(True, "held-out answers by greedy decoding (else sampled at the training temperature, fixed seed)")


@dataclass
class PPOStageConfig(PolicyEvalFields):
    """Fine-tune a policy with PPO against a reward model (actor-critic, per-token KL penalty to the SFT policy).
    (The evaluation fields, shared with DPO, come first: PolicyEvalFields.)"""

    # Model
    policy: str = field("sft@latest", "policy to start from, also the KL reference: NAME@vN, a local folder or the built-in name")
    reward_model: str = field("rm@latest", "reward model (one-label sequence classifier, same tokenizer as the policy), or rubric:NAME to reward with a rubric directly")
    mode: str = field("lora", "lora | qlora (4-bit NF4 base + LoRA; for a GPU)", ("lora", "qlora"))
    lora_r: int = field(16, "LoRA rank of the policy (and value) adapter")
    lora_alpha: int = field(32, "LoRA alpha (scale = alpha / r)")
    lora_layers: int = field(0, "LoRA on the top N transformer blocks only (0 = all): the blocks below are computed once per rollout")
    value_model: str = field("rm", "critic: rm = own LoRA + head on the RM (Huang et al.), policy_head = a value head on the policy (one forward for both)", VALUE_MODELS)
    # Data
    prompts: str = field("prompts@latest", "prompts snapshot: trains on split 'train', evaluates on 'heldout'")
    max_prompt_length: int = field(256, "longer prompts keep their last N tokens")
    # Generation
    max_new_tokens: int = field(48, "response budget in tokens; responses without EOS by then get missing_eos_penalty")
    temperature: float = field(0.7, "sampling temperature; log-probs use logits / temperature too (Huang et al. 2024)")
    top_p: float = field(1.0, "nucleus sampling; < 1 makes the samples slightly off-policy")
    sample_dtype: str = field("auto", "sample from a copy in this precision: auto = bfloat16 on CPUs with native bf16 (AVX512-BF16/AMX), else none", ("auto", "bfloat16", "float32"))
    # PPO
    algorithm: str = field("ppo", "ppo = actor-critic with GAE (Huang et al. 2024) | rloo = rloo_k samples per prompt, "
                                  "leave-one-out baseline, no critic (Ahmadian et al. 2024)", ("ppo", "rloo"))
    rloo_k: int = field(4, "rloo: samples per prompt (batch_size must be a multiple of it)")
    updates: int = field(40, "PPO updates (one rollout + optimisation each)")
    batch_size: int = field(8, "episodes (prompt + sampled response) per update")
    num_minibatches: int = field(2, "optimizer steps per PPO epoch")
    grad_accum: int = field(1, "micro-batches per minibatch (for memory)")
    ppo_epochs: int = field(2, "passes over each rollout")
    kl_coef: float = field(0.05, "beta: per-token KL penalty to the reference (initial value when adaptive_kl)")
    kl_estimator: str = field("k1", "per-token KL in the reward: k1 = log ratio (unbiased), k3 = (r-1)-log r (>= 0)", ("k1", "k3"))
    adaptive_kl: bool = field(False, "adapt beta towards kl_target (Ziegler et al. 2019)")
    kl_target: float = field(6.0, "target KL per sequence (nats) of the adaptive controller")
    kl_horizon: int = field(10000, "episodes over which the adaptive controller moves beta")
    kl_stop: float = field(10.0, "stop when the mean KL per sequence exceeds this (nats); 0 = never")
    gamma: float = field(1.0, "discount")
    lam: float = field(0.95, "GAE lambda")
    clip_range: float = field(0.2, "policy ratio clipping epsilon")
    clip_range_value: float = field(0.2, "value clipping around the rollout values")
    vf_coef: float = field(0.1, "weight of the value loss")
    missing_eos_penalty: float = field(-1.0, "added to the score of a response that never ended (Huang et al. 2024 EOS trick)")
    normalize_rewards: bool = field(True, "scale RM scores by running mean and std (RunningMoments) before the penalties")
    # Optimization
    lr: float = field(1e-4, "Adam learning rate, linearly annealed to 0 over training (Huang et al. 2024)")
    adam_eps: float = field(1e-5, "Adam epsilon (1e-5 as in Huang et al. 2024 / OpenAI baselines)")
    max_grad_norm: float = field(1.0, "gradient clipping (global norm)")
    seed: int = field(0, "seeds python, numpy, torch: prompt order, sampling, LoRA init")
    threads: int = field(0, "torch CPU threads (0 = torch's default)")
    # Output
    name: str = field("ppo", "registered model name: the result is NAME@vN")
    checkpoint_every: int = field(10, "save a checkpoint every N updates (and at the end)")
    samples_every: int = field(10, "log a table of sampled responses every N updates")
    report_to: str = field("trackio", "experiment tracking backend (trackio or none)", ("trackio", "none"))
    resume: str = field("", "a run folder to continue from its last checkpoint (its stored config is used)")

    def check(self) -> None:
        """Fail early, in words, on settings that cannot work together."""
        if self.batch_size % (self.num_minibatches * self.grad_accum):
            raise RlhfError(f"batch_size {self.batch_size} must be divisible by num_minibatches {self.num_minibatches} "
                            f"x grad_accum {self.grad_accum}")
        if self.batch_size // (self.num_minibatches * self.grad_accum) < 1:
            raise RlhfError("batch_size is smaller than num_minibatches x grad_accum")
        if self.temperature <= 0:
            raise RlhfError(f"temperature {self.temperature}: must be > 0 (PPO samples from the policy)")
        if not 0 < self.top_p <= 1:
            raise RlhfError(f"top_p {self.top_p}: must be in (0, 1]")
        for name in ("updates", "batch_size", "num_minibatches", "grad_accum", "ppo_epochs", "max_new_tokens", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise RlhfError(f"{name} {getattr(self, name)}: must be at least 1")
        if self.algorithm == "rloo":
            if self.rloo_k < 2 or self.batch_size % self.rloo_k:
                raise RlhfError(f"rloo_k {self.rloo_k}: needs 2 or more samples per prompt and batch_size {self.batch_size} "
                                "a multiple of it")
            if self.value_model == "rm":
                raise RlhfError("algorithm rloo has no critic: set value_model: policy_head (it is not trained)")
        if self.reward_model.startswith("rubric:") and self.value_model == "rm":
            raise RlhfError("value_model rm needs a reward model to start from; with a rubric reward use value_model: policy_head")

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // (self.num_minibatches * self.grad_accum)


def resumed(cfg: PPOStageConfig):
    """(the stored config of the run to resume, its run folder): a resumed run continues with exactly its own
    settings; (cfg, None) when `cfg.resume` is not set (a new run)."""
    from pathlib import Path

    from rlhf.config import from_dict
    from rlhf.train.ppo import checkpoint

    if not cfg.resume:
        return cfg, None
    run_dir = Path(cfg.resume).expanduser().resolve()
    stored = checkpoint.read_state(checkpoint.latest(run_dir))["config"]
    stored["resume"] = str(run_dir)
    return from_dict(PPOStageConfig, stored, where=f"{run_dir} checkpoint config"), run_dir

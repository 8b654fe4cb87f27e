"""rlhf.train: models and training. Imports rlhf.data, never rlhf.review.

- `modeling`    finding and loading models (built-in, folders, NAME@vN), 4-bit, LoRA targeting
- `sampling`    every generation loop: greedy answers, K candidates with a shared prompt cache
- `stage`       the skeleton every stage recipe fills in: run folder, seed, trainer arguments, save, register
- `sft`, `rm`   stage configs and components (`reward` holds tokenization, scoring and RM evaluation)
- `distributed` --processes / `accelerate launch`: what runs once, on the main process
- `resume`      checkpoints and --resume for the Trainer stages (SFT, RM, DPO)
- `generate`    candidates for the rank queue (`rlhf generate`)
- `simulate`    simulated annotators: a rubric plus calibrated noise
- `ppo/`        our PPO and RLOO: pure math (`core`), rollouts, the actor-critic model, trainer, checkpoints, evaluation
- `dpo`         the DPO stage config (trl DPOTrainer, adapter-disabled reference), judged like PPO
- `preferences` judged pairs grouped by prompt, votes of several annotators, hard / soft / weighted labels
- `listwise`    the listwise Bradley-Terry reward-model trainer on a frozen trunk (`trunk`: the split forward)
- `cards`, `plots`  model cards and plain Hugging Face exports; PPO curves
"""

"""rlhf.train: models and training. Imports rlhf.data, never rlhf.review.

- `modeling`    finding and loading models (built-in, folders, NAME@vN), 4-bit, LoRA targeting
- `sampling`    every generation loop: greedy answers, K candidates with a shared prompt cache
- `stage`       the skeleton every stage recipe fills in: run folder, seed, trainer arguments, save, register
- `sft`, `rm`   stage configs and components (`reward` holds tokenization, scoring and RM evaluation)
- `generate`    candidates for the rank queue (`rlhf generate`)
- `simulate`    simulated annotators: a rubric plus calibrated noise
- `ppo/`        our PPO: pure math (`core`), rollouts, the actor-critic model, trainer, checkpoints, evaluation
"""

"""Our actor-critic PPO: pure math in `core`, rollouts in `rollout`, the loop in `trainer`."""

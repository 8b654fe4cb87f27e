"""rlhf: the library behind the RLHF alignment service.

Store (SQL), dataset registry, model loading, PPO core, metrics and the `rlhf` CLI.
`labeling_app/` and `stages/` import this package; it imports neither of them.
"""

__version__ = "0.1.0"

"""The `just` recipes: `sft`, `rm`, `dpo`, `ppo` (each one stage over `rlhf.train.stage`'s skeleton), `demo` (the whole
loop on the built-in model) and `loop` (iterated rounds); `tables` formats what `demo` and `loop` print."""

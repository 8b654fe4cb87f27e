"""How far a policy has moved from a reference policy: KL(pi || pi_ref) on held-out prompts (the loop's "KL to the
first SFT model", `rlhf round kl`).

The PPO stage reports the KL to the policy it started from; over rounds of the closed loop that is the previous
round's policy. Here the reference is any model (the first SFT model): the estimate is the one the PPO evaluation
uses (`rlhf.train.ppo.evaluate`), the mean over prompts of the sequence-level k1 estimator

    KL ~= mean over prompts of  sum_t  log pi(a_t | s_t) - log pi_ref(a_t | s_t),   a ~ pi (logits / temperature)

on one answer sampled from the policy per prompt (`rlhf.train.sampling.answers`, seeded). The answer is re-encoded
from its text with the chat template (`rlhf.train.reward.tokenize_response`), the same tokens both models read.

Shapes: N prompts, T tokens of prompt + answer.
"""

from __future__ import annotations

import time

from rlhf.errors import RlhfError


def answer_logprob(model, ids: list[int], answer_start: int, temperature: float) -> float:
    """sum over the answer tokens of log softmax(logits / temperature) at the token taken."""
    import torch

    x = torch.tensor([ids])
    with torch.no_grad():
        logits = model(input_ids=x, use_cache=False).logits[0, :-1].float() / temperature  # (T-1, V)
    logp = torch.log_softmax(logits, -1).gather(-1, x[0, 1:, None])[:, 0]  # (T-1,) log p(token t+1 | <= t)
    return float(logp[answer_start - 1:].sum())


def kl_to_reference(policy: str, reference: str, prompts_ref: str, split: str = "heldout", limit: int = 40,
                    max_new_tokens: int = 48, temperature: float = 0.7, seed: int = 0) -> dict:
    """{"kl", "prompts", "seconds", ...}: KL(policy || reference) in nats per answer on the snapshot's `split` prompts."""
    from rlhf.train import modeling
    from rlhf.train.generate import load_prompt_rows
    from rlhf.train.modeling import eval_mode
    from rlhf.train.reward import check_same_tokenizer, tokenize_response
    from rlhf.train.sampling import answers

    t0 = time.time()
    ref, rows = load_prompt_rows(prompts_ref, split)
    prompts = [r["messages"] for r in rows][:limit or None]
    pol, base = modeling.resolve(policy), modeling.resolve(reference)
    tokenizer = modeling.load_tokenizer(pol)
    check_same_tokenizer(tokenizer, modeling.load_tokenizer(base), f"{policy} and {reference}")
    texts = answers(policy, prompts, max_new_tokens, temperature, 1.0, seed, batch_size=len(prompts), progress=False)
    seqs = []
    for messages, text in zip(prompts, texts):
        if not text:
            continue
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        prompt_len = len(prompt["input_ids"] if not isinstance(prompt, list) else prompt)
        ids, _ = tokenize_response(tokenizer, messages, text, 4096)  # the prompt's tokens, then the answer's
        seqs.append((ids, prompt_len))
    if not seqs:
        raise RlhfError(f"{policy}: every sampled answer on {ref} was empty; no KL to estimate")
    logps = []
    for spec in (pol, base):
        model = modeling.load_model(spec, mode="full", task="causal-lm")
        with eval_mode(model):
            logps.append([answer_logprob(model, ids, start, temperature) for ids, start in seqs])
        del model
    per_answer = [a - b for a, b in zip(*logps)]
    return {"kl": sum(per_answer) / len(per_answer), "prompts": len(per_answer), "policy": pol.ref, "reference": base.ref,
            "prompts_ref": ref, "split": split, "seconds": round(time.time() - t0, 1)}

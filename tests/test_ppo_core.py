"""Hand-computed tests for the pure PPO math: rlhf/train/ppo/core.py, advantages.py and tokens.py.

Every expected number is written out with the arithmetic in a comment. Tensors are
float64 so that the hand-computed decimals can be compared tightly. Padded positions
are deliberately filled with large/garbage values to prove they are ignored.
"""

import ast
import pathlib

import pytest
import torch

from rlhf.train.ppo import advantages, controllers, core, tokens
from rlhf.train.ppo.advantages import apply_missing_eos_penalty, gae, shape_rewards
from rlhf.train.ppo.core import (
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    explained_variance,
    kl_per_token,
    masked_mean,
    masked_var,
    masked_whiten,
    token_logprobs,
)

D = torch.float64


def t(x, dtype=D):
    return torch.tensor(x, dtype=dtype)


def close(actual, expected, atol=1e-6):
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


# Shared 2x3 example: row 0 has 2 real tokens, row 1 has 1 real token.
X = t([[1.0, 2.0, 100.0], [4.0, -50.0, 99.0]])
M = t([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


# ---------------------------------------------------------------------------
# Module hygiene
# ---------------------------------------------------------------------------


PURE = (core, advantages, tokens, controllers)  # the pure-math modules: no models, tokenizers or files


@pytest.mark.parametrize("module", PURE, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_pure_math_imports_only_torch_stdlib_and_each_other(module):
    src = pathlib.Path(module.__file__).read_text()
    assert len(src.splitlines()) <= 400  # the project's file-size rule
    roots, siblings = set(), set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").startswith("rlhf."):
                siblings.add(node.module)
            else:
                roots.add((node.module or "").split(".")[0])
    assert roots <= {"torch", "typing", "dataclasses", "math", "__future__"}, roots
    assert siblings <= {m.__name__ for m in PURE}, siblings


# ---------------------------------------------------------------------------
# Masked statistics
# ---------------------------------------------------------------------------


def test_masked_mean():
    # real values: 1, 2, 4 -> (1 + 2 + 4) / 3 = 7/3
    close(masked_mean(X, M), 7 / 3)
    # bool mask gives the same answer
    close(masked_mean(X, M.bool()), 7 / 3)
    # per row: row0 (1 + 2) / 2 = 1.5, row1 4 / 1 = 4
    close(masked_mean(X, M, dim=1), [1.5, 4.0])
    # a fully masked row gives 0, not NaN
    close(masked_mean(X, t([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]), dim=1), [1.5, 0.0])


def test_masked_var():
    # real values 1, 2, 4; mean 7/3; deviations -4/3, -1/3, 5/3
    # squared: 16/9 + 1/9 + 25/9 = 42/9 = 14/3
    # biased   = (14/3) / 3 = 14/9 ~= 1.5556
    # unbiased = (14/3) / 2 = 7/3  ~= 2.3333
    close(masked_var(X, M, unbiased=False), 14 / 9)
    close(masked_var(X, M, unbiased=True), 7 / 3)
    close(masked_var(X, M), torch.var(t([1.0, 2.0, 4.0])))
    with pytest.raises(ValueError):
        masked_var(X, t([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))  # one element, unbiased


def test_masked_whiten():
    w = masked_whiten(X, M)
    # (x - 7/3) / sqrt(7/3 + 1e-8), sqrt(7/3) = 1.5275252
    #   1 -> -4/3 / 1.5275252 = -0.8728716
    #   2 -> -1/3 / 1.5275252 = -0.2182179
    #   4 ->  5/3 / 1.5275252 =  1.0910894
    close(w, [[-0.8728716, -0.2182179, 0.0], [1.0910894, 0.0, 0.0]])
    # padding stays exactly zero
    assert w[0, 2].item() == 0.0 and w[1, 1].item() == 0.0 and w[1, 2].item() == 0.0
    # mean 0, (unbiased) var 1 on real tokens
    close(masked_mean(w, M), 0.0)
    close(masked_var(w, M), 1.0)
    # shift_mean=False: same scaling, mean 7/3 kept: -0.8728716 + 2.3333333 = 1.4604618
    w2 = masked_whiten(X, M, shift_mean=False)
    close(w2, [[1.4604618, 2.1151155, 0.0], [3.4244228, 0.0, 0.0]])
    close(masked_mean(w2, M), 7 / 3)


# ---------------------------------------------------------------------------
# Log-probabilities, entropy, KL
# ---------------------------------------------------------------------------

# B=2, T=2, V=3
LOGITS = torch.stack(
    [
        torch.stack([torch.log(t([1.0, 2.0, 3.0])), t([0.0, 0.0, 0.0])]),
        torch.stack([torch.log(t([1.0, 1.0, 2.0])), t([5.0, 5.0, 5.0])]),
    ]
)
LABELS = torch.tensor([[2, 1], [0, 2]])


def log_softmax_gather(logits, labels):
    """The plain form token_logprobs must equal: log softmax over the vocabulary, then the label's entry."""
    return torch.gather(torch.log_softmax(logits, dim=-1), -1, labels.unsqueeze(-1)).squeeze(-1)


def test_token_logprobs_hand_computed():
    lp = token_logprobs(LOGITS, LABELS)
    # (0,0): softmax(log[1,2,3]) = [1/6, 2/6, 3/6], label 2 -> log(1/2) = -0.6931472
    # (0,1): uniform over 3,                         label 1 -> log(1/3) = -1.0986123
    # (1,0): softmax(log[1,1,2]) = [1/4, 1/4, 2/4], label 0 -> log(1/4) = -1.3862944
    # (1,1): [5,5,5] is uniform (shift invariance),  label 2 -> log(1/3) = -1.0986123
    close(lp, [[-0.6931472, -1.0986123], [-1.3862944, -1.0986123]])
    assert lp.shape == (2, 2)
    # uniform logits over 4 tokens: log p = log(1/4) = -1.3862944; logits log[1, 2, 3, 2], label 2: log(3/8) = -0.9808293
    logits = torch.stack([torch.zeros(4), torch.log(torch.tensor([1.0, 2.0, 3.0, 2.0]))]).view(1, 2, 4)
    torch.testing.assert_close(token_logprobs(logits, torch.tensor([[1, 2]])), torch.tensor([[-1.3862944, -0.9808293]]))


def test_token_logprobs_equals_log_softmax_gather():
    close(token_logprobs(LOGITS, LABELS), log_softmax_gather(LOGITS, LABELS))
    g = torch.Generator().manual_seed(0)
    for shape in ((5, 4, 11), (3, 5, 50), (1, 1, 2)):
        logits = torch.randn(*shape, generator=g, dtype=torch.float32) * 3
        labels = torch.randint(0, shape[-1], shape[:2], generator=g)
        torch.testing.assert_close(token_logprobs(logits, labels), log_softmax_gather(logits, labels))
        # gradients flow the same way
        a = logits.clone().requires_grad_(True)
        b = logits.clone().requires_grad_(True)
        token_logprobs(a, labels).sum().backward()
        log_softmax_gather(b, labels).sum().backward()
        torch.testing.assert_close(a.grad, b.grad)


def test_entropy_from_logits():
    h = entropy_from_logits(LOGITS)
    # log[1,2,3] -> p = [1/6, 1/3, 1/2]
    #   H = (1/6) ln 6 + (1/3) ln 3 + (1/2) ln 2
    #     = 0.2986266 + 0.3662041 + 0.3465736 = 1.0114043
    # uniform over 3 -> ln 3 = 1.0986123
    # log[1,1,2] -> p = [1/4, 1/4, 1/2]: H = 2 * (1/4) ln 4 + (1/2) ln 2 = 1.5 ln 2 = 1.0397208
    close(h, [[1.0114043, 1.0986123], [1.0397208, 1.0986123]])


def test_kl_per_token_k1_k3():
    logp = t([[-1.0, -2.0, -3.0]])
    ref = t([[-1.5, -1.0, -3.0]])
    # k1 = logp - ref: -1 - (-1.5) = 0.5; -2 - (-1) = -1.0; 0
    close(kl_per_token(logp, ref, "k1"), [[0.5, -1.0, 0.0]])
    # k3 with r = ref - logp = [-0.5, 1.0, 0]:
    #   (e^-0.5 - 1) + 0.5 = 0.6065307 - 0.5 = 0.1065307
    #   (e^1 - 1) - 1      = 2.7182818 - 2   = 0.7182818
    #   (e^0 - 1) - 0      = 0
    k3 = kl_per_token(logp, ref, "k3")
    close(k3, [[0.1065307, 0.7182818, 0.0]])
    assert (k3 >= 0).all()
    with pytest.raises(ValueError):
        kl_per_token(logp, ref, "k9")


# ---------------------------------------------------------------------------
# Rewards
# ---------------------------------------------------------------------------

# row 0: 3 real tokens, row 1: 2 real tokens + 1 pad (garbage logprobs at the pad)
LOGP = t([[-1.0, -2.0, -1.0], [-0.5, -1.0, 9.0]])
REF = t([[-1.5, -1.0, -1.0], [-1.0, -1.0, 0.0]])
MASK23 = t([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
SCORES = t([1.0, 2.0])


def test_shape_rewards_k1_score_at_last_real_token():
    rewards, non_score, kl = shape_rewards(SCORES, LOGP, REF, MASK23, kl_coef=0.1, estimator="k1")
    # k1 = logp - ref: row0 [0.5, -1.0, 0.0]; row1 [0.5, 0.0, (pad) -> 0]
    close(kl, [[0.5, -1.0, 0.0], [0.5, 0.0, 0.0]])
    # non_score = -0.1 * kl
    close(non_score, [[-0.05, 0.1, 0.0], [-0.05, 0.0, 0.0]])
    # score goes to index mask.sum(1) - 1 = [2, 1]:
    #   row0 t=2: 0.0 + 1.0 = 1.0;   row1 t=1: 0.0 + 2.0 = 2.0;   row1 t=2 (pad) = 0
    close(rewards, [[-0.05, 0.1, 1.0], [-0.05, 2.0, 0.0]])


def test_shape_rewards_k3_and_bool_mask():
    rewards, non_score, kl = shape_rewards(
        SCORES, LOGP, REF, MASK23.bool(), kl_coef=0.1, estimator="k3"
    )
    # r = ref - logp: row0 [-0.5, 1.0, 0.0]; row1 [-0.5, 0.0, pad]
    # k3: 0.1065307, 0.7182818, 0 | 0.1065307, 0, 0
    close(kl, [[0.1065307, 0.7182818, 0.0], [0.1065307, 0.0, 0.0]])
    # rewards = -0.1 * k3 (+ score at last real token)
    close(rewards, [[-0.01065307, -0.07182818, 1.0], [-0.01065307, 2.0, 0.0]])


def test_apply_missing_eos_penalty():
    scores = t([1.0, 2.0, 3.0])
    out = apply_missing_eos_penalty(scores, torch.tensor([True, False, True]), -1.0)
    # only the middle row lacks EOS: 2.0 + (-1.0) = 1.0
    close(out, [1.0, 1.0, 3.0])
    close(scores, [1.0, 2.0, 3.0])  # input untouched


# ---------------------------------------------------------------------------
# GAE
# ---------------------------------------------------------------------------


def test_gae_hand_computed():
    gamma, lam = 0.9, 0.8  # gamma * lam = 0.72
    # row 1 has one padded position (t=2) holding garbage reward 7 / value 5
    rewards = t([[1.0, 0.0, 2.0], [0.5, 1.0, 7.0]])
    values = t([[0.5, 1.0, 1.5], [0.2, 0.4, 5.0]])
    mask = t([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma, lam)
    # Row 0 (V after the last token = 0):
    #   t=2: delta2 = r2 + gamma*0   - V2 = 2 + 0         - 1.5 = 0.5 ;  A2 = 0.5
    #   t=1: delta1 = r1 + gamma*V2  - V1 = 0 + 0.9*1.5   - 1.0 = 0.35;  A1 = 0.35 + 0.72*0.5  = 0.71
    #   t=0: delta0 = r0 + gamma*V1  - V0 = 1 + 0.9*1.0   - 0.5 = 1.4 ;  A0 = 1.4  + 0.72*0.71 = 1.9112
    #   returns = A + V = [1.9112+0.5, 0.71+1.0, 0.5+1.5] = [2.4112, 1.71, 2.0]
    # Row 1 (t=2 is padding: A2 = 0, and V after the last real token t=1 is 0):
    #   t=1: delta1 = 1   + 0.9*0   - 0.4 = 0.6 ;  A1 = 0.6
    #   t=0: delta0 = 0.5 + 0.9*0.4 - 0.2 = 0.66;  A0 = 0.66 + 0.72*0.6 = 1.092
    #   returns = [1.092+0.2, 0.6+0.4, 0] = [1.292, 1.0, 0.0]
    close(adv, [[1.9112, 0.71, 0.5], [1.092, 0.6, 0.0]])
    close(ret, [[2.4112, 1.71, 2.0], [1.292, 1.0, 0.0]])


def test_gae_gamma1_lam1_is_monte_carlo():
    # With gamma = lam = 1 the returns are the undiscounted reward-to-go:
    #   rewards [1, 2, 3] -> returns [6, 5, 3]; adv = returns - values
    rewards = t([[1.0, 2.0, 3.0, 0.0]])
    values = t([[0.5, 0.5, 0.5, 9.0]])
    mask = t([[1.0, 1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, 1.0, 1.0)
    close(ret, [[6.0, 5.0, 3.0, 0.0]])
    close(adv, [[5.5, 4.5, 2.5, 0.0]])


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------


def test_clipped_policy_loss():
    clip = 0.2
    # ratios: row0 [1.1 (inside), 1.5 (above), 0.5 (below)], row1 [0.5, 1.5, 3.0 (pad)]
    ratios = t([[1.1, 1.5, 0.5], [0.5, 1.5, 3.0]])
    adv = t([[1.0, 1.0, 2.0], [-1.0, -1.0, 10.0]])
    mask = t([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    old = t([[-1.0, -2.0, -0.5], [-1.0, -3.0, -1.0]])
    logp = (old + torch.log(ratios)).requires_grad_(True)
    loss, clipfrac, approx_kl, ratio = clipped_policy_loss(logp, old, adv, mask, clip)
    # token | ratio | adv | pg_losses = -adv*r | pg_losses2 = -adv*clip(r) | max  | clipped?
    #   a   | 1.1   | +1  | -1.1               | -1.1 (clip(1.1)=1.1)      | -1.1 | no
    #   b   | 1.5   | +1  | -1.5               | -1.2 (clip=1.2)           | -1.2 | yes
    #   c   | 0.5   | +2  | -1.0               | -1.6 (clip=0.8)           | -1.0 | no
    #   d   | 0.5   | -1  |  0.5               |  0.8 (clip=0.8)           |  0.8 | yes
    #   e   | 1.5   | -1  |  1.5               |  1.2 (clip=1.2)           |  1.5 | no
    # pg_loss = (-1.1 - 1.2 - 1.0 + 0.8 + 1.5) / 5 = -1.0 / 5 = -0.2
    close(loss, -0.2)
    # pg_clipfrac = 2 / 5 = 0.4
    close(clipfrac, 0.4)
    # approx_kl = 0.5 * mean(log(r)^2) over 5 real tokens
    #   = 0.5 * (0.0953102^2 + 0.4054651^2 + 0.6931472^2 + 0.6931472^2 + 0.4054651^2) / 5
    #   = 0.5 * (0.0090840 + 0.1644020 + 0.4804530 + 0.4804530 + 0.1644020) / 5
    #   = 0.5 * 1.2987939 / 5 = 0.1298794
    close(approx_kl, 0.1298794)
    close(ratio, ratios)
    assert not clipfrac.requires_grad and not approx_kl.requires_grad
    # Gradient: zero where the clipped term is active (b, d) and on padding;
    # elsewhere d(-adv * r)/dlogp / 5 = -adv * r / 5:
    #   a: -1*1.1/5 = -0.22; c: -2*0.5/5 = -0.2; e: +1*1.5/5 = 0.3
    loss.backward()
    close(logp.grad, [[-0.22, 0.0, -0.2], [0.0, 0.3, 0.0]])


def test_clipped_value_loss():
    c = 0.2
    values = t([[1.0, 2.0, 2.0], [0.0, 0.0, 100.0]]).requires_grad_(True)
    old = t([[0.9, 1.0, 1.0], [0.5, 0.5, 0.0]])
    returns = t([[1.5, 1.5, 3.0], [1.0, -1.0, -7.0]])
    mask = t([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    loss, clipfrac = clipped_value_loss(values, old, returns, mask, c)
    # v   | old | R    | vclip = clamp(v, old-c, old+c) | vf1=(v-R)^2 | vf2=(vclip-R)^2 | max  | clipped?
    # 1.0 | 0.9 | 1.5  | clamp(1.0, 0.7, 1.1) = 1.0      | 0.25        | 0.25            | 0.25 | no
    # 2.0 | 1.0 | 1.5  | clamp(2.0, 0.8, 1.2) = 1.2      | 0.25        | 0.09            | 0.25 | no
    # 2.0 | 1.0 | 3.0  | 1.2                             | 1.0         | 3.24            | 3.24 | yes
    # 0.0 | 0.5 | 1.0  | clamp(0.0, 0.3, 0.7) = 0.3      | 1.0         | 0.49            | 1.0  | no
    # 0.0 | 0.5 | -1.0 | 0.3                             | 1.0         | 1.69            | 1.69 | yes
    # vf_loss = 0.5 * (0.25 + 0.25 + 3.24 + 1.0 + 1.69) / 5 = 0.5 * 6.43 / 5 = 0.643
    close(loss, 0.643)
    # vf_clipfrac = 2 / 5 = 0.4
    close(clipfrac, 0.4)
    loss.backward()
    # grad of 0.5*(v-R)^2/5 = (v-R)/5 where unclipped term active, 0 where clipped, 0 on pad:
    #   (1-1.5)/5 = -0.1; (2-1.5)/5 = 0.1; (0-1)/5 = -0.2
    close(values.grad, [[-0.1, 0.1, 0.0], [-0.2, 0.0, 0.0]])


def test_explained_variance():
    # real returns [1,2,3,4], values [1,2,3,3]; padding holds garbage
    returns = t([[1.0, 2.0, 3.0], [4.0, 99.0, 99.0]])
    values = t([[1.0, 2.0, 3.0], [3.0, -50.0, 0.0]])
    mask = t([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    # residual [0,0,0,1]: mean 0.25, var = (3*0.0625 + 0.5625)/4 = 0.1875
    # returns: mean 2.5, var = (2.25 + 0.25 + 0.25 + 2.25)/4 = 1.25
    # ev = 1 - 0.1875 / 1.25 = 1 - 0.15 = 0.85
    close(explained_variance(values, returns, mask), 0.85)
    close(explained_variance(returns, returns, mask), 1.0)
    assert torch.isnan(explained_variance(values, torch.ones_like(returns), mask))

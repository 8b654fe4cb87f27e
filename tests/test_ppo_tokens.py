"""Hand-computed tests for the token helpers of the PPO math (rlhf/train/ppo/tokens.py) and how they meet the
rewards and losses: EOS truncation, the score on the EOS token, losses over a given token count (processes).

Same conventions as tests/test_ppo_core.py: float64, padded positions filled with garbage to prove they are ignored.
"""

import torch

from rlhf.train.ppo.advantages import apply_missing_eos_penalty, shape_rewards
from rlhf.train.ppo.core import clipped_policy_loss, clipped_value_loss, masked_mean, token_mean
from rlhf.train.ppo.tokens import first_true_indices, truncate_after_eos

from test_ppo_core import D, M, X, close, t

# ---------------------------------------------------------------------------
# Token utilities
# ---------------------------------------------------------------------------


def test_first_true_indices():
    bools = torch.tensor(
        [[False, True, False, True], [False, False, False, False], [True, False, False, False]]
    )
    # first True at 1; none -> T = 4; first True at 0
    assert first_true_indices(bools).tolist() == [1, 4, 0]


def test_truncate_after_eos():
    EOS, PAD = 2, 0
    tokens = torch.tensor(
        [
            [5, 2, 7, 8],  # EOS in the middle -> [5, 2, PAD, PAD]
            [5, 6, 7, 2],  # EOS at the end    -> unchanged
            [5, 6, 7, 8],  # no EOS            -> unchanged, has_eos False
            [2, 2, 5, 2],  # EOS first         -> [2, PAD, PAD, PAD] (only the first counts)
        ]
    )
    out, mask, has_eos = truncate_after_eos(tokens, EOS, PAD)
    assert out.tolist() == [[5, 2, 0, 0], [5, 6, 7, 2], [5, 6, 7, 8], [2, 0, 0, 0]]
    # the EOS token itself is a real token
    assert mask.tolist() == [
        [True, True, False, False],
        [True, True, True, True],
        [True, True, True, True],
        [True, False, False, False],
    ]
    assert has_eos.tolist() == [True, True, False, True]
    assert tokens[0].tolist() == [5, 2, 7, 8]  # input untouched
    # pad_id == eos_id also works
    out2, mask2, _ = truncate_after_eos(torch.tensor([[5, 2, 7, 8]]), 2, 2)
    assert out2.tolist() == [[5, 2, 2, 2]] and mask2.tolist() == [[True, True, False, False]]


def test_truncate_then_shape_rewards_end_to_end():
    # mask from truncate_after_eos puts the score on the EOS token (index 1),
    # and the missing-EOS penalty on the row without EOS (-1 + 0.5 = -0.5 at index 2).
    tokens = torch.tensor([[5, 2, 7], [5, 6, 7]])
    _, mask, has_eos = truncate_after_eos(tokens, 2, 0)
    scores = apply_missing_eos_penalty(t([3.0, 0.5]), has_eos, -1.0)
    z = torch.zeros(2, 3, dtype=D)
    rewards, _, _ = shape_rewards(scores, z, z, mask, kl_coef=0.05)
    close(rewards, [[0.0, 3.0, 0.0], [0.0, 0.0, -0.5]])


def test_losses_over_a_given_token_count_add_up_to_the_whole_minibatch():
    # rows 0 and 1 of a minibatch on two "processes" (or micro-batches): 2 + 1 = 3 real tokens in all
    lp = t([[-1.0, -2.0, 7.0], [-0.5, 9.0, 9.0]]).requires_grad_()
    old = t([[-1.1, -1.8, 0.0], [-0.5, 0.0, 0.0]])
    adv = t([[1.0, -1.0, 5.0], [2.0, 5.0, 5.0]])
    whole, *_ = clipped_policy_loss(lp, old, adv, M, 0.2)
    (g_whole,) = torch.autograd.grad(whole, lp)
    parts = [clipped_policy_loss(lp[i:i + 1], old[i:i + 1], adv[i:i + 1], M[i:i + 1], 0.2, num_tokens=t(3.0))
             for i in range(2)]
    close(parts[0][0] + parts[1][0], whole.detach(), atol=1e-12)
    (g_parts,) = torch.autograd.grad(parts[0][0] + parts[1][0], lp)
    close(g_parts, g_whole, atol=1e-12)
    # each piece's own mean instead (what DDP averaged before): row 1's single token weighs as much as row 0's two
    own = [clipped_policy_loss(lp[i:i + 1], old[i:i + 1], adv[i:i + 1], M[i:i + 1], 0.2)[0] for i in range(2)]
    assert abs(((own[0] + own[1]) / 2 - whole).item()) > 1e-3
    v, ret = t([[0.5, 0.1, 3.0], [0.2, 8.0, 8.0]]), t([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    vf_whole, _ = clipped_value_loss(v, v * 0, ret, M, 0.2)
    vf_parts = sum(clipped_value_loss(v[i:i + 1], v[i:i + 1] * 0, ret[i:i + 1], M[i:i + 1], 0.2, num_tokens=3.0)[0]
                   for i in range(2))
    close(vf_parts, vf_whole, atol=1e-12)
    assert token_mean(X, M).item() == masked_mean(X, M).item()

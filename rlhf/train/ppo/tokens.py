"""Response tokens: where each response ends (its first EOS) and its mask. Pure functions over tensors:
like ``core``, this module imports only torch and the standard library. Shapes: B episodes, T response tokens.
"""

from __future__ import annotations

from typing import Tuple

import torch

__all__ = ["first_true_indices", "truncate_after_eos"]


# ---------------------------------------------------------------------------
# Token utilities
# ---------------------------------------------------------------------------


def first_true_indices(bools: torch.Tensor, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """Index of the first True in each row, or T if the row has none
    (TRL / Huang et al. 2024 reference code ``first_true_indices``).

    Args:
        bools: (B, T) bool.

    Returns:
        (B,) integer indices in [0, T].
    """
    row_len = bools.size(-1)
    zero_or_index = row_len * (~bools).to(dtype) + torch.arange(
        row_len, dtype=dtype, device=bools.device
    )
    return torch.min(zero_or_index, dim=-1).values


def truncate_after_eos(
    tokens: torch.Tensor, eos_id: int, pad_id: int
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Replace everything after the first EOS by ``pad_id`` and build the response mask.

    Sampling runs for a fixed number of tokens; tokens produced after the first EOS are
    not part of the response (Huang et al. 2024, "truncate responses after EOS";
    lm-human-preferences ``truncate_token``).

    Args:
        tokens: (B, T) sampled response token ids.
        eos_id: end-of-sequence token id.
        pad_id: padding token id (may equal ``eos_id``).

    Returns:
        tokens: (B, T) copy with positions after the first EOS set to ``pad_id``.
        mask: (B, T) bool; True up to and *including* the first EOS, False after it;
            all True for rows without EOS.
        has_eos: (B,) bool, True where the row contains ``eos_id``.
    """
    T = tokens.shape[1]
    first_eos = first_true_indices(tokens == eos_id)  # (B,), T if none
    idx = torch.arange(T, device=tokens.device).unsqueeze(0)  # (1, T)
    mask = idx <= first_eos.unsqueeze(1)  # (B, T)
    truncated = torch.where(mask, tokens, torch.full_like(tokens, pad_id))
    has_eos = first_eos < T
    return truncated, mask, has_eos

"""Turning token-id lists into model input: the one padding helper of ssti (training, evaluation, the
scanner's context check and the benchmarks all pad through it)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def pad_batch(token_ids: Sequence[Sequence[int]], rows: Sequence[int] | np.ndarray, pad_id: int,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad the given rows to their longest member.

    Returns input ids and attention mask, both int64 of shape (len(rows), longest row), on `device`
    (one host copy each; the transfer is non-blocking).
    """
    seqs = [token_ids[i] for i in rows]
    width = max(map(len, seqs))
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for j, seq in enumerate(seqs):
        ids[j, :len(seq)] = seq
        mask[j, :len(seq)] = 1
    return torch.from_numpy(ids).to(device, non_blocking=True), torch.from_numpy(mask).to(device, non_blocking=True)

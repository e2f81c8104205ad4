"""Metric loss of TF-CLIP: batch-hard triplet on Euclidean distances (TransReID/TF-CLIP ``TripletLoss``).

The identity losses are plain ``F.cross_entropy(..., label_smoothing=0.1)``: the release's
``CrossEntropyLabelSmooth`` (targets ``(1-ε)·onehot + ε/C``, ε = 0.1) is the same function.
"""
from __future__ import annotations

import torch


def pairwise_euclidean(x: torch.Tensor) -> torch.Tensor:
    """``[N,D]`` → ``[N,N]`` distances ``sqrt(max(‖a‖² + ‖b‖² − 2ab, 1e-12))`` (features not normalised)."""
    sq = (x * x).sum(dim=1, keepdim=True)  # [N,1]
    return (sq + sq.t() - 2.0 * x @ x.t()).clamp_min(1e-12).sqrt()


def batch_hard_triplet(features: torch.Tensor, pids: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Mean over anchors of ``max(0, d(a, hardest positive) − d(a, hardest negative) + margin)``.

    Args:
        features: ``[N,D]`` embeddings (unnormalised, as released).
        pids: ``[N]`` identity labels; every anchor needs a positive and a negative in the batch
            (identity-balanced P×K batches guarantee it).
        margin: the ranking margin (0.3).
    """
    dist = pairwise_euclidean(features)  # [N,N]
    same = pids.view(-1, 1) == pids.view(1, -1)  # [N,N]
    hardest_pos = dist.masked_fill(~same, float("-inf")).max(dim=1).values  # [N]
    hardest_neg = dist.masked_fill(same, float("inf")).min(dim=1).values  # [N]
    valid = torch.isfinite(hardest_neg)  # anchors with at least one negative
    if not bool(valid.any()):
        return features.sum() * 0.0  # a one-identity batch: no ranking signal
    return (hardest_pos[valid] - hardest_neg[valid] + margin).clamp_min(0).mean()

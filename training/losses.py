"""Training losses of DMCA (``vtc``, ``msc``), IRRA's identity-aware options (``sdm``, ``id``, ``mlm``) and CFFA's
multi-association loss (``mal``).

Embeddings arrive unnormalised; each loss normalises what it needs. ``scale`` is the fixed inverse
temperature of the released code (1 / 0.02 = 50).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tvreid_sdk.registry import Registry

LOSSES: Registry = Registry("loss")


def vtc_loss(video: torch.Tensor, text: torch.Tensor, scale: float = 50.0) -> torch.Tensor:
    """Symmetric InfoNCE with batch-index labels (same-identity pairs count as negatives).

    Args:
        video: ``[B,D]`` video embeddings. text: ``[B,D]`` caption embeddings.
    """
    v = F.normalize(video.float(), dim=-1)
    t = F.normalize(text.float(), dim=-1)
    logits = scale * v @ t.t()  # [B,B]
    labels = torch.arange(v.shape[0], device=v.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def sdm_loss(video: torch.Tensor, text: torch.Tensor, pids: torch.Tensor, scale: float = 50.0,
             eps: float = 1e-8) -> torch.Tensor:
    """IRRA's similarity-distribution matching: KL(softmax(scale·cos) ‖ normalised same-id labels), both ways."""
    v = F.normalize(video.float(), dim=-1)
    t = F.normalize(text.float(), dim=-1)
    same = (pids.view(-1, 1) == pids.view(1, -1)).float()  # [B,B]
    target = same / same.sum(dim=1, keepdim=True)
    v2t = scale * v @ t.t()  # [B,B]

    def kl(logits: torch.Tensor) -> torch.Tensor:
        p = F.softmax(logits, dim=1)
        return (p * (F.log_softmax(logits, dim=1) - torch.log(target + eps))).sum(dim=1).mean()

    return kl(v2t) + kl(v2t.t())


def id_loss(classifier: torch.nn.Module, video: torch.Tensor, text: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
    """Shared linear identity classifier on both modalities: ``(CE_video + CE_text) / 2``."""
    return (F.cross_entropy(classifier(video.float()), pids) + F.cross_entropy(classifier(text.float()), pids)) / 2


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over masked positions. ``logits [M,V]`` for the ``M`` masked positions, ``labels [M]``."""
    return F.cross_entropy(logits.float(), labels)


def mal_coefficient(batch_size: int) -> float:
    """CFFA's weight of the negative term: ``floor(1/B, 3)`` (0.015 for B = 64)."""
    return math.floor(1000.0 / batch_size) / 1000.0


def mal_loss(image: torch.Tensor, text: torch.Tensor, pids: torch.Tensor, tau: float = 0.015, margin: float = 0.1,
             coefficient: float | None = None) -> torch.Tensor:
    """CFFA's multi-association loss (MAL), summed over the batch and both retrieval directions.

    On the cosine matrix ``S`` (text rows × image columns), for every anchor row ``i``:
    ``[m − Σ_j α_ij S_ij + c · log Σ_{k: other id} exp(S_ik / τ)]_+`` where ``α_i`` is the softmax of ``S_i / τ``
    over the anchor's same-identity items (detached: a soft weighting of the positives). The same on ``Sᵀ``.
    A row without any other identity in the batch contributes 0.

    Note: the release's ``c = floor(1/B, 3)`` balances ``τ = 0.015`` at its batch of 64 only (``c/τ = 1``). For
    ``c/τ > 1`` (smaller batches) the loss reaches 0 by pushing *every* cosine towards −1, for ``c/τ < 1`` (larger
    batches) by pushing every cosine up; pass ``coefficient ≈ τ`` to train with another batch size.

    Args:
        image: ``[B,D]`` image (or video) embeddings. text: ``[B,D]`` caption embeddings. pids: ``[B]`` identities.
        tau: temperature of both softmaxes (0.015). margin: ``m`` (0.1).
        coefficient: ``c``; default :func:`mal_coefficient` of the batch size.
    """
    v = F.normalize(image.float(), dim=-1)
    t = F.normalize(text.float(), dim=-1)
    scores = t @ v.t()  # [B,B] text × image
    same = pids.view(-1, 1) == pids.view(1, -1)  # [B,B]
    c = mal_coefficient(scores.shape[0]) if coefficient is None else coefficient
    has_neg = (~same).any(dim=1)  # [B]; the same for both directions (the relation is symmetric)

    def one_direction(s: torch.Tensor) -> torch.Tensor:
        logits = s / tau
        alpha = logits.masked_fill(~same, float("-inf")).softmax(dim=1).detach()  # [B,B], rows sum to 1
        positive = (alpha * s).sum(dim=1)  # [B]
        neg_logits = logits.masked_fill(same, float("-inf"))
        neg_logits = torch.where(has_neg.unsqueeze(1), neg_logits, torch.zeros_like(neg_logits))  # keep LSE finite
        negative = torch.logsumexp(neg_logits, dim=1)  # [B]
        per_row = (margin - positive + c * negative).clamp(min=0)
        return torch.where(has_neg, per_row, torch.zeros_like(per_row))

    return (one_direction(scores) + one_direction(scores.t())).sum()


LOSSES.register("vtc", vtc_loss)
LOSSES.register("sdm", sdm_loss)
LOSSES.register("id", id_loss)
LOSSES.register("msc", mlm_loss)  # DMCA: MLM through the multi-scale context branch
LOSSES.register("mlm", mlm_loss)  # IRRA/CFFA: MLM through the implicit relation reasoning branch
LOSSES.register("mal", mal_loss)


def parse_loss_names(spec: str) -> tuple[str, ...]:
    """``"msc+vtc"`` → ``("msc", "vtc")``, validated against :data:`LOSSES`."""
    names = tuple(n.strip() for n in spec.split("+") if n.strip())
    for name in names:
        LOSSES.get(name)
    if not names:
        raise KeyError("no loss selected; use e.g. 'msc+vtc'")
    return names

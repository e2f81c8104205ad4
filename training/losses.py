"""Training losses of DMCA (``vtc``, ``msc``) and IRRA's identity-aware options (``sdm``, ``id``).

Embeddings arrive unnormalised; each loss normalises what it needs. ``scale`` is the fixed inverse
temperature of the released code (1 / 0.02 = 50).
"""
from __future__ import annotations

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


LOSSES.register("vtc", vtc_loss)
LOSSES.register("sdm", sdm_loss)
LOSSES.register("id", id_loss)
LOSSES.register("msc", mlm_loss)


def parse_loss_names(spec: str) -> tuple[str, ...]:
    """``"msc+vtc"`` → ``("msc", "vtc")``, validated against :data:`LOSSES`."""
    names = tuple(n.strip() for n in spec.split("+") if n.strip())
    for name in names:
        LOSSES.get(name)
    if not names:
        raise KeyError("no loss selected; use e.g. 'msc+vtc'")
    return names

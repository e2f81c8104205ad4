"""CFFA (cross-modal fine-grained feature alignment, built on IRRA): the ``cffa`` model family.

Test time is a dual encoder with two embeddings per side: global (image CLS / text EOT, 512-d) and FLFR local
(the top 30% of patch / word tokens by last-layer CLS / EOT attention → L2-norm → Linear + MLP residual → max-pool,
1024-d); the score is ``(cos_global + cos_local) / 2`` (:class:`tvreid_sdk.modeling.clip.CFFATowers`). Training adds
MAL on both embeddings, the identity loss on the global ones, and IRRA's implicit relation reasoning (MLM through
:class:`training.dmca.IRRBranch`, weight 1.4).

Release facts (lqfhello/CFFA ``CFFA_Project``): ``tau`` 0.015, ``margin`` 0.1, ``select_ratio`` 0.3, MLM weight 1.4,
ID weight 1, batch 64, 60 epochs, Adam lr 1e-5 with the FLFR heads at a base lr of 1e-3 (both under the warm-up +
cosine schedule), IRRA's image augmentation (flip, pad 10 + random crop, random erasing 2–40 % with ``value=mean``;
the recipe's data section, :func:`training.dataset.train_augment`). Three release behaviours are recipe options (on
in ``cffa_cuhkpedes_vitb16``, off by default): text attention dropout 0.05 in training (``model.text_attn_dropout``),
caption augmentation ``txt_aug`` (``data.text_aug_prob``, :mod:`training.text_aug`), and MAL/ID on the MLM-masked
caption (``model.contrast_on_masked``).

Evaluation (:func:`evaluate_joint`): IRRA's ``t2v`` protocol with the joint score, in the training loop and in
``tvreid eval`` (:mod:`training.cffa_eval`).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from tvreid_sdk.config import PreprocessCfg
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import ArchCfg
from tvreid_sdk.modeling.clip import (FLFR_SELECT_RATIO, CLIPTowers, LocalEmbeddingHead, cffa_image_parts,
                                      cffa_text_parts, joint_embedding)
from tvreid_sdk.vision.preprocess import normalize_torch

from .config import OptimSection, TrainCfg, require_family
from .data.records import Dataset
from .dataset import TrackletEvalSet, tokenize_captions
from .dmca import IRRBranch
from .distributed import gather_rows, rank_share
from .losses import id_loss, mal_coefficient, mal_loss, mlm_loss
from .metrics import evaluate_t2v
from .optim import make_adam, param_groups

FAMILY = "cffa"  # the family this module implements
CFFA_LOSSES = ("mal", "mlm", "id")
TAU = 0.015
MARGIN = 0.1
MLM_WEIGHT = 1.4
FLFR_LR = 1e-3  # the release trains the FLFR heads at a fixed learning rate, whatever the base lr


class CFFA(nn.Module):
    """The full CFFA training model.

    State names: towers as ``towers.visual.*``/``towers.text.*`` (saved as ``visual.*``/``text.*``), FLFR heads as
    ``flfr_visual.*``/``flfr_text.*`` — together exactly a :class:`~tvreid_sdk.modeling.clip.CFFATowers` — plus the
    training-only ``irr.*`` and ``classifier.*``.

    Args:
        arch: a ``family="cffa"`` architecture.
        losses: a subset of ``("mal", "mlm", "id")``.
        num_classes: training identities (needed by ``id``).
        cmt_depth: layers of the IRR cross-modal transformer.
        tau/margin: MAL temperature and margin.
        mlm_weight: weight of the MLM loss.
        select_ratio: share of tokens FLFR keeps.
        mal_c: MAL's negative-term weight ``c``; default ``floor(1/B, 3)`` of each forward batch. The training loop
            passes the recipe's global batch (:func:`build_cffa`), so a rank's slice under DDP keeps the release's c.
        contrast_on_masked: the MAL (global and local) and ID losses encode the MLM-masked caption
            (``batch["mlm_ids"]``) instead of the clean one. The IRRA/CFFA release does this by accident (its caption
            ids share memory with the masked copy, anosorae/IRRA issue 13; undoing it cost accuracy there). Needs
            the ``mlm`` loss; the MLM branch still encodes the masked caption in its own forward, as released.
    """

    def __init__(self, arch: ArchCfg, losses: tuple[str, ...] = CFFA_LOSSES, num_classes: int = 0,
                 cmt_depth: int = 4, tau: float = TAU, margin: float = MARGIN, mlm_weight: float = MLM_WEIGHT,
                 select_ratio: float = FLFR_SELECT_RATIO, mal_c: float | None = None,
                 contrast_on_masked: bool = False):
        super().__init__()
        unknown = [name for name in losses if name not in CFFA_LOSSES]
        if unknown or not losses:
            raise ConfigError(f"the cffa family trains with losses from {'+'.join(CFFA_LOSSES)}, got {losses}; "
                              "set model.losses to e.g. mal+mlm+id (the release's)")
        require_family(arch, FAMILY, "CFFA")
        if contrast_on_masked and "mlm" not in losses:
            raise ConfigError("model.contrast_on_masked encodes the MLM-masked caption for MAL/ID, but the losses "
                              f"{'+'.join(losses)} have no mlm; add mlm to model.losses or set contrast_on_masked "
                              "to false")
        self.arch = arch
        self.losses = tuple(losses)
        self.contrast_on_masked = contrast_on_masked
        self.tau, self.margin, self.mlm_weight, self.select_ratio = tau, margin, mlm_weight, select_ratio
        self.mal_c = mal_c
        d = arch.embed_dim
        self.towers = CLIPTowers(arch)
        self.flfr_visual = LocalEmbeddingHead(d, arch.local_dim)
        self.flfr_text = LocalEmbeddingHead(d, arch.local_dim)
        self.irr = IRRBranch(d, max(1, d // 64), cmt_depth, arch.text.vocab_size) if "mlm" in self.losses else None
        if "id" in self.losses:
            if num_classes <= 0:
                raise ConfigError("the 'id' loss needs the number of training identities (> 0)")
            self.classifier = nn.Linear(d, num_classes)
            nn.init.normal_(self.classifier.weight, std=0.001)
            nn.init.zeros_(self.classifier.bias)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the towers' transformer blocks in the backward pass (``run.grad_checkpointing``)."""
        self.towers.set_grad_checkpointing(enable)

    def image_parts(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised frames ``[B,T,3,H,W]`` → global ``[B,D]``, local ``[B,Dl]`` (both averaged over T) and tokens
        averaged over T ``[B,L,D]`` (the IRR keys), none normalised. Still images are ``T = 1``."""
        b, t = frames.shape[:2]
        glob, local, tokens = cffa_image_parts(self.towers, self.flfr_visual, frames.flatten(0, 1), self.select_ratio)
        return glob.view(b, t, -1).mean(1), local.view(b, t, -1).mean(1), tokens.view(b, t, *tokens.shape[1:]).mean(1)

    def text_parts(self, ids: torch.Tensor, eot_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B,77]``, ``[B]`` → global ``[B,D]``, local ``[B,Dl]``, not normalised."""
        return cffa_text_parts(self.towers, self.flfr_text, ids, eot_index, self.select_ratio)

    @torch.no_grad()
    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """Test-time gallery vector ``[B, D+Dl]`` (unit norm) of normalised frames ``[B,T,3,H,W]``."""
        glob, local, _ = self.image_parts(frames)
        return joint_embedding(glob, local)

    @torch.no_grad()
    def encode_text(self, ids: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        """Test-time query vector ``[B, D+Dl]`` (unit norm); ``query @ gallery.T = (cos_g + cos_l) / 2``."""
        return joint_embedding(*self.text_parts(ids, eot_index))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss terms for one batch (the keys of :meth:`training.dmca.DMCA.forward`; MLM needs ``mlm_ids``/
        ``mlm_labels``). Returns ``mal_loss`` (global + local), ``mlm_loss`` (weighted), ``id_loss`` (for the selected
        losses), ``mlm_acc`` and ``loss`` (the sum of the ``*_loss`` terms). With ``contrast_on_masked`` the MAL/ID
        text embeddings come from ``mlm_ids`` (masking keeps the EOT position)."""
        img_g, img_l, img_tokens = self.image_parts(batch["frames"])
        caption = batch["mlm_ids"] if self.contrast_on_masked else batch["ids"]  # [B,77]
        txt_g, txt_l = self.text_parts(caption, batch["eot"])
        pids = batch["pids"]
        out: dict[str, torch.Tensor] = {}
        if "mal" in self.losses:  # a batch-wide loss: under DDP it sees every rank's rows
            all_img_g, all_txt_g, all_img_l, all_txt_l, all_pids = gather_rows(img_g, txt_g, img_l, txt_l, pids)
            out["mal_loss"] = (mal_loss(all_img_g, all_txt_g, all_pids, self.tau, self.margin, self.mal_c)
                               + mal_loss(all_img_l, all_txt_l, all_pids, self.tau, self.margin, self.mal_c))
        if "id" in self.losses:
            out["id_loss"] = id_loss(self.classifier, img_g, txt_g, pids) * rank_share(img_g.shape[0])
        if self.irr is not None:
            labels = batch["mlm_labels"]
            positions = labels > 0  # [B,77]
            logits = self.irr(self.towers.encode_text_tokens(batch["mlm_ids"]), img_tokens, positions)  # [M,V]
            out["mlm_loss"] = self.mlm_weight * mlm_loss(logits, labels[positions]) * rank_share(logits.shape[0],
                                                                                                 logits.device)
            with torch.no_grad():
                out["mlm_acc"] = (logits.argmax(-1) == labels[positions]).float().mean()
        out["loss"] = sum(v for k, v in out.items() if k.endswith("_loss"))
        return out


def build_cffa(cfg: TrainCfg, arch: ArchCfg, num_classes: int) -> CFFA:
    """The model a recipe asks for (``model.losses``, ``model.cmt_depth``, ``model.contrast_on_masked``; ``arch``
    carries ``model.text_attn_dropout``, :func:`training.config.resolve_arch`); MAL/FLFR hyper-parameters as released,
    MAL's ``c = floor(1/B, 3)`` from the recipe's batch size ``B`` (the global batch, also under DDP).

    Warns when the batch size unbalances MAL (see :func:`training.losses.mal_loss`: the release's ``c`` fits B = 64).
    """
    losses = tuple(n.strip() for n in cfg.model.losses.split("+") if n.strip())
    ratio = mal_coefficient(cfg.data.batch_size) / TAU
    if "mal" in losses and not 0.8 <= ratio <= 1.2:
        warnings.warn(f"MAL with batch {cfg.data.batch_size}: c = floor(1/B, 3) gives c/tau = {ratio:.2f}, far from "
                      "the release's 1.0 (batch 64); the loss then has a degenerate minimum (all cosines pushed to "
                      "one side). Use data.batch_size=64 as released.", stacklevel=2)
    return CFFA(arch, losses, num_classes=num_classes, cmt_depth=cfg.model.cmt_depth,
                mal_c=mal_coefficient(cfg.data.batch_size), contrast_on_masked=cfg.model.contrast_on_masked)


def cffa_optimizer(model: nn.Module, cfg: OptimSection) -> torch.optim.Optimizer:
    """Adam with the rules of :func:`training.optim.param_groups` and the release's fixed base lr (1e-3) for the
    FLFR heads."""
    groups = param_groups(model, cfg)
    for group in groups:
        if group["name"].startswith("flfr_"):
            group["lr"] = group["initial_lr"] = FLFR_LR
    return make_adam(groups, cfg)


JOINT_SCORE = "(cos_global + cos_local) / 2"  # CFFA's test score, what the joint vectors' dot product computes


@torch.no_grad()
def evaluate_joint(encoder: nn.Module, data: Dataset, preprocess: PreprocessCfg, num_frames: int, sampler: str,
                   device: torch.device, *, cache_frames: bool = False, workers: int = 0,
                   batch_size: int = 64) -> dict:
    """IRRA's protocol with CFFA's score: every caption of every test item queries every test item,
    ``sim = (cos_global + cos_local) / 2``, matched by person id; R1/R5/R10/mAP/mINP.

    Args:
        encoder: a :class:`CFFA` training model or :class:`~tvreid_sdk.modeling.clip.CFFATowers` (both have
            ``encode_video(frames [B,T,3,H,W])`` and ``encode_text(ids, eot)`` returning joint vectors).
        data: the dataset; its query and gallery splits (captioned items) form the test set.
        preprocess: the model's preprocessing. num_frames, sampler: T and the test frame sampler.

    Returns:
        :func:`training.metrics.evaluate_t2v`'s metrics plus ``score`` (:data:`JOINT_SCORE`).
    """
    items = [t for t in (*data.query, *data.gallery) if t.captions]
    if not items:
        raise ValueError("the dataset has no captioned test items to evaluate on")
    encoder.eval()
    ds = TrackletEvalSet(items, preprocess, num_frames, sampler, cache_frames=cache_frames)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers)
    gallery = torch.cat([encoder.encode_video(normalize_torch(frames.to(device), preprocess)).float()
                         for frames in loader])  # [G,E]
    captions = [c for t in items for c in t.captions]
    q_pids = np.array([t.pid for t in items for _ in t.captions])
    ids, eot = tokenize_captions(captions)
    queries = torch.cat([encoder.encode_text(torch.from_numpy(ids[s:s + 256]).to(device),
                                             torch.from_numpy(eot[s:s + 256]).to(device)).float()
                         for s in range(0, len(ids), 256)])  # [Q,E]
    sim = (queries @ gallery.t()).cpu().numpy()  # [Q,G] = (cos_g + cos_l) / 2
    return {**evaluate_t2v(sim, q_pids, np.array([t.pid for t in items])), "score": JOINT_SCORE}


def evaluate_cffa(model: CFFA, data: Dataset, cfg: TrainCfg, device: torch.device, batch_size: int = 64) -> dict:
    """:func:`evaluate_joint` of the training model with the recipe's data settings (the training loop's eval)."""
    return evaluate_joint(model, data, model.arch.preprocess, cfg.data.num_frames, cfg.data.test_sampler, device,
                          cache_frames=cfg.data.cache_frames, workers=min(cfg.data.workers, 2),
                          batch_size=batch_size)

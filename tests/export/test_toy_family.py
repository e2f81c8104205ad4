"""A fourth family, defined entirely here, goes through the one export pipeline with no edit to it: its FamilySpec
and export hooks are registered through the public API, export_bundle writes and verifies its bundle, and the SDK
Encoder serves it on ONNX Runtime CPU like any other bundle."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from export.build import export_bundle
from export.families import EXPORT_FAMILIES, ExportFamily, export_family, register_export_family
from export.graph_kit import L2Normalize, PixelNormalize
from export.parity import normalised_pixels
from tvreid_sdk import Encoder
from tvreid_sdk.config import PreprocessCfg
from tvreid_sdk.modeling.arch import ArchCfg, TextCfg, VisionCfg
from tvreid_sdk.modeling.checkpoint import load_checkpoint, save_checkpoint
from tvreid_sdk.modeling.family import FAMILIES, FamilySpec, register_family

T = 3
PATCH = 16


class ToyTowers(nn.Module):
    """A tiny dual encoder: token embedding pooled at EOT → projection; per-patch linear features averaged over the
    patches and the T frames → projection (``towers`` of the toy FamilySpec, built as ``ToyTowers(arch)``)."""

    def __init__(self, cfg: ArchCfg):
        super().__init__()
        self.cfg = cfg
        width = cfg.text.width
        self.token_embedding = nn.Embedding(cfg.text.vocab_size, width)
        self.positional_embedding = nn.Parameter(0.1 * torch.randn(cfg.text.context_length, width))
        self.text_proj = nn.Linear(width, cfg.embed_dim)
        self.patch = nn.Conv2d(3, cfg.vision.width, kernel_size=PATCH, stride=PATCH)
        self.video_proj = nn.Linear(cfg.vision.width, cfg.embed_dim)

    def encode_text(self, ids: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:  # [B,L], [B] → [B,D]
        x = self.token_embedding(ids) + self.positional_embedding  # [B,L,W]
        pooled = x[torch.arange(x.shape[0]), eot_index]  # [B,W]
        return self.text_proj(torch.tanh(pooled))

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:  # normalised [B,T,3,H,W] → [B,D]
        b, t = frames.shape[:2]
        feats = self.patch(frames.flatten(0, 1)).flatten(2).mean(-1)  # [B*T,W]
        return self.video_proj(feats.view(b, t, -1).mean(1))


class ToyTextGraph(nn.Module):
    """``input_ids [B,L]`` + ``eot_index [B]`` → L2-normalised ``[B,D]`` (one-hot EOT pooling: static shapes)."""

    def __init__(self, towers: ToyTowers):
        super().__init__()
        self.towers = towers
        self.width = towers.cfg.text.width
        self.register_buffer("positions", torch.arange(towers.cfg.text.context_length, dtype=torch.int32),
                             persistent=False)
        self.l2norm = L2Normalize()

    def forward(self, input_ids: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        tw = self.towers
        x = F.embedding(input_ids, tw.token_embedding.weight) + tw.positional_embedding  # [B,L,W]
        onehot = (eot_index.reshape(-1, 1) == self.positions).to(x.dtype)  # [B,L]
        pooled = torch.matmul(onehot.unsqueeze(1), x).reshape(-1, self.width)  # [B,W]
        return self.l2norm(tw.text_proj(torch.tanh(pooled)))


class ToyVideoGraph(nn.Module):
    """``frames uint8 [B,T,H,W,3]`` → L2-normalised ``[B,D]``."""

    def __init__(self, towers: ToyTowers, num_frames: int):
        super().__init__()
        self.towers, self.num_frames = towers, num_frames
        self.height, self.width = towers.cfg.vision.image_size
        self.channels = towers.cfg.vision.width
        self.pixels = PixelNormalize(towers.cfg.preprocess)
        self.l2norm = L2Normalize()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.pixels(frames.to(torch.float32).reshape(-1, self.height, self.width, 3))  # [BT,3,H,W]
        patches = (self.height // PATCH) * (self.width // PATCH)
        feats = self.towers.patch(x).reshape(-1, self.channels, patches).mean(-1)  # [BT,W]
        video = feats.reshape(-1, self.num_frames, self.channels).mean(1)  # [B,W]
        return self.l2norm(self.towers.video_proj(video))


class ToyExport(ExportFamily):
    """The toy family's export hooks: only the wrappers; probe, reference and graph I/O are the defaults."""

    name = "toy"

    def build_wrapper(self, towers: ToyTowers, role: str, num_frames: int, fused: bool) -> nn.Module:
        return ToyTextGraph(towers) if role == "text_encoder" else ToyVideoGraph(towers, num_frames)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """``(towers, bundle)`` of the toy family; the registrations are undone afterwards."""
    register_family(FamilySpec(name="toy", task="text-to-video", roles=("text_encoder", "video_encoder"),
                               queries=("text", "tracklet"), towers=f"{__name__}:ToyTowers", variants=("default",)))
    try:
        register_export_family(ToyExport())
        try:
            arch = ArchCfg(name="toy-arch", family="toy", embed_dim=16,
                           vision=VisionCfg(image_size=(64, 32), patch_size=PATCH, patch_stride=PATCH, width=24,
                                            layers=1, heads=1),
                           text=TextCfg(width=24, layers=1, heads=1), preprocess=PreprocessCfg(image_size=(64, 32)))
            torch.manual_seed(0)
            towers = ToyTowers(arch).eval()
            root = tmp_path_factory.mktemp("toy")
            ckpt = save_checkpoint(towers, root / "toy.safetensors", num_frames=T)
            bundle, rows = export_bundle(ckpt, root / "bundle", fp16=True, progress=lambda _: None)
            yield towers, bundle, rows
        finally:
            EXPORT_FAMILIES.unregister("toy")
    finally:
        FAMILIES.unregister("toy")


def test_the_pipeline_exports_and_verifies_a_family_it_does_not_know(toy):
    towers, bundle, rows = toy
    m = bundle.manifest
    assert m.family == "toy" and m.num_frames == T and m.embed_dim == 16 and m.family_cfg is None
    assert {(a.role, a.path) for a in m.artifacts} == {("weights", "weights.safetensors")} | {
        (r, f"{r}{s}") for r in ("text_encoder", "video_encoder") for s in (".onnx", ".fp16.onnx")}  # default only
    assert m.export["parity"]["passed"] and set(m.export["parity"]["retrieval"]) >= {"fp32/default/cpu"}
    assert all(r.parity.endswith(" ok") for r in rows if r.artifact.endswith(".onnx") and "fp16" not in r.artifact)
    meta = {p.key: p.value for p in onnx.load(str(bundle.root / "video_encoder.onnx")).metadata_props}
    assert meta["tvreid.family"] == "toy" and meta["tvreid.num_frames"] == str(T)
    assert isinstance(load_checkpoint(bundle.root).towers, ToyTowers)  # the one reader builds the family's towers


def test_the_sdk_serves_the_toy_bundle_like_the_eager_module(toy):
    towers, bundle, _ = toy
    texts = ["a man in a red jacket", "a woman carrying a brown handbag across the square"]
    rng = np.random.default_rng(1)
    tracklets = [rng.integers(0, 256, (int(rng.integers(2, 7)), 80, 40, 3), dtype=np.uint8) for _ in range(3)]
    with Encoder.from_bundle(bundle.root, backend="ort-cpu") as enc:
        text = enc.encode_text(texts)
        video = enc.encode_tracklets(tracklets)
        batch = enc.tokenizer(texts, truncate=True)
        clips = np.stack([enc.prepare_tracklet(t) for t in tracklets])  # [N,T,H,W,3], what the graph got
    with torch.no_grad():
        ref_text = F.normalize(towers.encode_text(torch.from_numpy(batch.ids).long(),
                                                  torch.from_numpy(batch.eot_index).long()), dim=-1).numpy()
        ref_video = F.normalize(towers.encode_video(normalised_pixels(clips, towers.cfg.preprocess)), dim=-1).numpy()
    assert text.shape == (2, 16) and video.shape == (3, 16)
    np.testing.assert_allclose(text, ref_text, atol=1e-5)
    np.testing.assert_allclose(video, ref_video, atol=1e-5)


def test_duplicate_and_unknown_registrations_are_errors(toy):
    assert "toy" in FAMILIES and "toy" in EXPORT_FAMILIES
    with pytest.raises(KeyError, match="already registered"):
        register_export_family(ToyExport())
    with pytest.raises(KeyError, match="unknown export family 'nope'"):
        EXPORT_FAMILIES.unregister("nope")
    assert isinstance(export_family("toy"), ToyExport)

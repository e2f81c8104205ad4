"""Parity of exported graphs with the PyTorch model: the gate every bundle of every family passes before it is
written (:func:`run_parity`).

For each ONNX graph: ``onnx.checker`` full check, ONNX Runtime (CPU EP; CUDA EP too when present) against the eager
fp32 reference with per-embedding cosine ≥ 0.9999 (fp32) / ≥ 0.999 (fp16) / ≥ 0.99 and mean ≥ 0.995 (int8), batch-1
outputs equal to batch-N outputs, and, per (precision, variant), the top-10 of caption queries over a small tracklet
gallery identical to the torch top-10 (families with text and video graphs; reported, not gated, for int8). The
family gives the probe and the reference (:class:`export.families.ExportFamily`); the standard probe
(:func:`make_probe`) has captions from the real tokenizer,
including one whose EOT sits at position 76 and an over-long one that the tokenizer truncates.

Top-10 comparison: ``top10_exact`` is strict list equality. The gate, ``top10_equal``, accepts a swap only between
items whose *reference* scores differ by less than ``tie_tol`` (1e-5 fp32, 2e-3 fp16): such near-ties carry no
ranking information, and fp16 rounding legitimately flips them. Both values are reported.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F

from tvreid_sdk.config import PreprocessCfg
from tvreid_sdk.errors import ModelFormatError
from tvreid_sdk.modeling.arch import ArchCfg
from tvreid_sdk.modeling.family import ENCODER_ROLES as ROLES
from tvreid_sdk.text.tokenizer import get_tokenizer

COS_MIN = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.99}
COS_MEAN_MIN = {"fp32": 0.0, "fp16": 0.0, "int8": 0.995}  # INT8 also gates the mean over the probe
TIE_TOL = {"fp32": 1e-5, "fp16": 2e-3, "int8": 2e-2}
BATCH_ABS_TOL = {"fp32": 1e-5, "fp16": 2e-3, "int8": 2e-2}
#: precisions whose text→video top-10 is gated; INT8's is reported only (its gate is the per-item cosine)
TOPK_GATED = ("fp32", "fp16")
TOP_K = 10
_CAPTIONS = (
    "a man in a red jacket and black trousers walking to the left",
    "a woman with long hair wearing a white shirt, blue jeans and carrying a brown handbag",
    "a young man with a backpack riding a bicycle across the square",
    "a person in a grey hoodie",
    "a girl in a yellow dress",
    "an old man with a walking stick and a dark coat slowly crossing the road near the parked cars",
    "a man",
    "a tall woman in a long green coat holding an umbrella and talking on the phone",
)


@dataclasses.dataclass(frozen=True)
class GraphArtifact:
    """One ONNX file to check."""

    name: str  # the artifact path inside the bundle, e.g. text_encoder.fp16.onnx
    role: str
    precision: str
    variant: str
    path: Path


@dataclasses.dataclass(frozen=True)
class Probe:
    """The parity inputs of every role a family exports, and what the report says about them.

    Attributes:
        feeds: ``{role: {graph input name: array}}``, batch first (the same rows for the graph and the reference).
        info: the report's ``probe`` section (sizes, seed, what makes the probe hard).
    """

    feeds: dict[str, dict[str, np.ndarray]]
    info: dict

    def limited_videos(self, n: int) -> "Probe":
        """The first ``n`` tracklets of the video (and frame) probe; captions unchanged (they are cheap, and the last
        ones are the hard cases). For quick exports whose weights do not matter (the benchmark's random model)."""
        feeds = {r: ({k: v[:n] for k, v in f.items()} if r != "text_encoder" else f) for r, f in self.feeds.items()}
        return Probe(feeds, {**self.info, "limited_to_tracklets": n})


def make_probe(arch: ArchCfg, num_frames: int, roles: tuple[str, ...] = ROLES, *, num_videos: int = 16,
               seed: int = 0) -> Probe:
    """The standard probe: captions (real tokenizer; EOT at the last position; one over-long) for ``text_encoder``,
    ``num_videos`` textured synthetic tracklets for ``video_encoder`` and the frames of the first two for
    ``frame_encoder`` (only the roles asked for)."""
    h, w = arch.vision.image_size
    rng = np.random.default_rng(seed)
    videos = np.stack([_synthetic_tracklet(rng, num_frames, h, w) for _ in range(num_videos)])  # [G,T,H,W,3]
    feeds: dict[str, dict[str, np.ndarray]] = {}
    info: dict = {"num_frames": num_frames, "seed": seed}
    if "text_encoder" in roles:
        tok = get_tokenizer()
        ctx = arch.text.context_length
        filler = _caption_with_eot_at(tok, ctx - 1)
        overlong = " ".join(_CAPTIONS) + " " + " ".join(_CAPTIONS)
        batch = tok(list(_CAPTIONS) + [filler, overlong], truncate=True)
        if int(batch.eot_index[-2]) != ctx - 1 or not bool(batch.truncated[-1]) or int(batch.eot_index[-1]) != ctx - 1:
            raise AssertionError("parity probe: the tokenizer did not produce the EOT-at-76 / truncated captions")
        feeds["text_encoder"] = {"input_ids": batch.ids, "eot_index": batch.eot_index}
        info.update(captions=int(batch.ids.shape[0]), eot_positions=sorted({int(e) for e in batch.eot_index}),
                    truncated_captions=int(batch.truncated.sum()))
    if "video_encoder" in roles:
        feeds["video_encoder"] = {"frames": videos}
        info["gallery_tracklets"] = num_videos
    if "frame_encoder" in roles:
        feeds["frame_encoder"] = {"frames": videos[:2].reshape(-1, h, w, 3)}  # every frame of tracklets 0..1
    return Probe(feeds, info)


def _caption_with_eot_at(tok, position: int) -> str:
    words = _CAPTIONS[0].split()
    text = ""
    for k in range(4 * position):
        candidate = (text + " " + words[k % len(words)]).strip()
        if len(tok.encode(candidate)) + 1 > position:
            break
        text = candidate
    while len(tok.encode(text)) + 1 < position:  # top up with single-token words
        text += " red"
    return text


def _synthetic_tracklet(rng: np.random.Generator, t: int, h: int, w: int) -> np.ndarray:
    """A person-like tracklet: coarse colour blocks (clothes) + a moving offset + sensor noise, uint8 [T,H,W,3]."""
    coarse = rng.uniform(0, 255, size=(4, 2, 3))  # [4,2,3] head/torso/legs × left/right
    base = np.kron(coarse, np.ones((-(-h // 4), -(-w // 2), 1)))[:h, :w]  # [H,W,3]
    frames = []
    for k in range(t):
        shifted = np.roll(base, shift=(k % 3) - 1, axis=1)
        frames.append(np.clip(shifted + rng.normal(0, 12, size=shifted.shape), 0, 255))
    return np.stack(frames).astype(np.uint8)  # [T,H,W,3]


def normalised_pixels(frames: np.ndarray, pre: PreprocessCfg) -> torch.Tensor:
    """uint8 ``[...,H,W,3]`` → the towers' float input ``[...,3,H,W]``: ``(x/255 - mean)/std``."""
    x = torch.from_numpy(frames).float() / 255.0
    x = (x - torch.tensor(pre.mean)) / torch.tensor(pre.std)
    return x.movedim(-1, -3).contiguous()


@torch.no_grad()
def towers_reference(towers: torch.nn.Module, pre: PreprocessCfg,
                     feeds: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Eager fp32 outputs of CLIP-style towers for the roles in ``feeds``: text ``encode_text`` and video
    ``encode_video`` (L2-normalised), frames ``encode_image`` (as the towers return it)."""
    out = {}
    if "text_encoder" in feeds:
        ids = torch.from_numpy(feeds["text_encoder"]["input_ids"]).long()
        eot = torch.from_numpy(feeds["text_encoder"]["eot_index"]).long()
        out["text_encoder"] = F.normalize(towers.encode_text(ids, eot), dim=-1).numpy()
    if "video_encoder" in feeds:
        video = towers.encode_video(normalised_pixels(feeds["video_encoder"]["frames"], pre))
        out["video_encoder"] = F.normalize(video, dim=-1).numpy()
    if "frame_encoder" in feeds:
        out["frame_encoder"] = towers.encode_image(normalised_pixels(feeds["frame_encoder"]["frames"], pre)).numpy()
    return out


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``[N,D]`` arrays (float64)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-30)


def topk_agreement(ref_q: np.ndarray, ref_g: np.ndarray, q: np.ndarray, g: np.ndarray, *, k: int = TOP_K,
                   tie_tol: float = 0.0) -> tuple[bool, bool]:
    """``(exact, tie_aware)`` equality of the top-k gallery ids per query (see the module docstring)."""
    ref_scores = ref_q.astype(np.float64) @ ref_g.astype(np.float64).T  # [Q,G]
    scores = q.astype(np.float64) @ g.astype(np.float64).T
    k = min(k, ref_scores.shape[1])
    ref_top = np.argsort(-ref_scores, axis=1, kind="stable")[:, :k]
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    exact = bool((ref_top == top).all())
    gaps = np.abs(np.take_along_axis(ref_scores, ref_top, 1) - np.take_along_axis(ref_scores, top, 1))  # [Q,k]
    tie_aware = bool(((ref_top == top) | (gaps <= tie_tol)).all())
    return exact, tie_aware


def check_graph(path: str | os.PathLike) -> None:
    """``onnx.checker`` full check (types and shapes); raises :class:`ModelFormatError`."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ModelFormatError(f"{path}: onnx.checker rejects the graph ({exc}); this is an exporter bug — "
                               "report it with the checkpoint's arch") from None


def _session(path: Path, provider: str) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=[provider])


def _batch_consistency(sess: ort.InferenceSession, feeds: dict[str, np.ndarray], full: np.ndarray) -> float:
    """Largest |batch-N row - batch-1 output| over the first 3 rows."""
    worst = 0.0
    for row in range(min(3, full.shape[0])):
        single = sess.run(None, {k: v[row:row + 1] for k, v in feeds.items()})[0]
        worst = max(worst, float(np.abs(single[0] - full[row]).max()))
    return worst


def run_parity(graphs: list[GraphArtifact], probe: Probe, reference: dict[str, np.ndarray], *,
               reference_name: str = "PyTorch eager fp32 towers",
               on_graph: Callable[[GraphArtifact], None] | None = None) -> dict:
    """Check every graph against the eager reference; return the report stored in ``manifest.export["parity"]``.

    Per graph: ``onnx.checker``, then on each available provider the outputs for ``probe.feeds[role]`` against
    ``reference[role]`` (cosine gate), batch-1 against batch-N; an fp16 graph the CPU provider cannot run is reported
    as skipped there. When text and video graphs of the same precision and variant ran, the text→video top-10 is
    compared with the reference's. Nothing is raised for a failed gate (see ``report["passed"]`` and each entry's
    ``passed``/``failures``) so callers can print the whole report; :func:`require_passed` raises.

    Args:
        graphs: the ONNX files.
        probe: the family's probe (:meth:`ExportFamily.probe <export.families.ExportFamily.probe>`).
        reference: eager outputs per role for ``probe.feeds``.
        reference_name: what the reference is, for the report.
        on_graph: called after each graph is checked (progress display).
    """
    providers = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        providers.append("CUDAExecutionProvider")
    report: dict = {
        "thresholds": {"cos_min": COS_MIN, "cos_mean_min": COS_MEAN_MIN, "top_k": TOP_K, "tie_tol": TIE_TOL,
                       "batch_abs_tol": BATCH_ABS_TOL},
        "probe": dict(probe.info), "reference": reference_name, "providers": providers,
        "artifacts": {}, "retrieval": {},
    }
    outputs: dict[tuple[str, str, str, str], np.ndarray] = {}
    for art in graphs:
        entry: dict = {"role": art.role, "precision": art.precision, "variant": art.variant, "failures": []}
        check_graph(art.path)
        entry["checker"] = "ok"
        feeds = probe.feeds[art.role]
        for provider in providers:
            key = "cpu" if provider == "CPUExecutionProvider" else "cuda"
            try:
                sess = _session(art.path, provider)
                out = sess.run(None, feeds)[0]
            except Exception as exc:  # onnxruntime raises its own Fail/NotImplemented types
                if art.precision == "fp16" and key == "cpu":  # CPU EP lacks some fp16 kernels: say so, don't fake
                    entry[key] = {"skipped": f"ONNX Runtime CPU cannot run this fp16 graph: {str(exc)[:200]}"}
                    continue
                entry["failures"].append(f"{key}: ONNX Runtime failed to run the graph: {str(exc)[:300]}")
                continue
            outputs[(art.role, art.precision, art.variant, key)] = out
            cos = cosine_rows(out, reference[art.role])
            batch_diff = _batch_consistency(sess, feeds, out)
            entry[key] = {"cos_min": float(cos.min()), "cos_mean": float(cos.mean()),
                          "batch1_vs_batchN_max_abs": batch_diff}
            if not np.isfinite(out).all() or cos.min() < COS_MIN[art.precision]:
                entry["failures"].append(f"{key}: cosine {cos.min():.6f} < {COS_MIN[art.precision]}")
            elif cos.mean() < COS_MEAN_MIN[art.precision]:
                entry["failures"].append(f"{key}: mean cosine {cos.mean():.6f} < {COS_MEAN_MIN[art.precision]}")
            if batch_diff > BATCH_ABS_TOL[art.precision]:
                entry["failures"].append(f"{key}: batch-1 vs batch-N differ by {batch_diff:.2e}")
        entry["verified"] = any("cos_min" in entry.get(k, {}) for k in ("cpu", "cuda"))
        entry["passed"] = not entry["failures"]
        report["artifacts"][art.name] = entry
        if on_graph is not None:
            on_graph(art)
    for (role, precision, variant, key), q in outputs.items():
        g = outputs.get(("video_encoder", precision, variant, key))
        if role != "text_encoder" or g is None:
            continue
        exact, tie_aware = topk_agreement(reference["text_encoder"], reference["video_encoder"], q, g,
                                          tie_tol=TIE_TOL[precision])
        report["retrieval"][f"{precision}/{variant}/{key}"] = {"top10_exact": exact, "top10_equal": tie_aware,
                                                              "gated": precision in TOPK_GATED,
                                                              "passed": tie_aware or precision not in TOPK_GATED}
    report["passed"] = (all(e["passed"] for e in report["artifacts"].values())
                        and all(r["passed"] for r in report["retrieval"].values()))
    return report


def require_passed(report: dict) -> None:
    """Raise :class:`ModelFormatError` listing every failed check of a :func:`run_parity` report."""
    if report.get("passed"):
        return
    problems = [f"{name}: {'; '.join(e['failures'])}" for name, e in report["artifacts"].items() if e["failures"]]
    problems += [f"top-10 differs from PyTorch ({combo})" for combo, r in report["retrieval"].items()
                 if not r["passed"]]
    int8 = [name for name, e in report["artifacts"].items() if e["failures"] and e.get("precision") == "int8"]
    if int8 and len(int8) == len(problems):
        raise ModelFormatError("export parity failed, no bundle written: " + " | ".join(problems)
                               + ". The INT8 graphs drift from the fp32 model: calibrate on real frames and captions "
                               "(--calib SOURCE, more --calib-items), or ship fp32/fp16 (drop --int8)")
    raise ModelFormatError("export parity failed, no bundle written: " + " | ".join(problems)
                           + ". The exported graphs do not reproduce the PyTorch model; report this with the "
                           "checkpoint's arch and the tool versions (torch, onnx, onnxruntime)")


def summary(report: dict, artifact: str) -> str:
    """One short cell for the CLI table, e.g. ``cos>=0.999998 ok``."""
    entry = report.get("artifacts", {}).get(artifact)
    if entry is None:
        return "-"
    cosines = [v["cos_min"] for k, v in entry.items() if k in ("cpu", "cuda") and "cos_min" in v]
    if not cosines:
        return "not run (no provider could run it)"
    return f"cos>={min(cosines):.6f} {'ok' if entry['passed'] else 'FAIL'}"

"""Training throughput of the DMCA faithful recipe on random data: ms/step, tracklets/s, peak memory, FLOPs, MFU.

The step is the one :func:`training.engine.train` runs (:func:`training.loop_kit.train_step`: normalise frames,
autocast forward, ``zero_grad``, scaled backward, optional clipping, optimiser step, scaler update, loss read back to
the host), on one fixed random batch already on the device, so data loading is not measured. FLOPs are counted once with
``torch.utils.flop_counter.FlopCounterMode`` over an untimed step of the eager model (matmuls, convolutions and
attention, forward + backward; element-wise work and the optimiser are not counted, as is usual for MFU).
MFU = (FLOPs per step / p50 step time) / the device's dense 16-bit peak; that peak is known only for the GPUs in
:data:`DENSE_16BIT_PEAK_TFLOPS` (or passed as ``peak_tflops``), so on a CPU the row has achieved TFLOP/s and
``mfu: null``.
"""
from __future__ import annotations

import dataclasses
import resource
from typing import Any, Callable, Optional

import numpy as np
import torch

from tvreid_sdk.bench.report import make_row
from tvreid_sdk.bench.timing import CUDA, HOST, TimingCfg, measure
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.vision.preprocess import normalize_torch

from .config import TrainCfg, load_recipe
from .dmca import DMCA
from .loop_kit import autocast_dtype, resolve_device, train_step
from .losses import parse_loss_names
from .masking import mask_tokens
from .optim import build_optimizer

# Dense (no sparsity) bf16/fp16 tensor-core peaks, TFLOP/s, by device-name substring; first match wins.
DENSE_16BIT_PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0),
                           ("A100", 312.0))
# Issue 7's anchor: the seed's released training code on the lent H100 (fp16-weights model, random data).
ANCHOR_H100 = {"ms_per_step": 199.5, "tracklets_per_s": 160.0, "peak_memory_gib": 15.4, "mfu": 0.09,
               "source": "seed code (fp16 weights), random data, no data loading, NVIDIA H100; issue 7"}
SOT_ID, EOT_ID, BPE_MAX = 49406, 49407, 49405


@dataclasses.dataclass(frozen=True)
class TrainBenchCfg:
    """What to time.

    Attributes:
        recipe: training recipe name or path (default: the faithful DMCA recipe).
        overrides: ``section.key=value`` recipe overrides (e.g. ``run.compile=true``).
        arch: architecture override (``tiny-test`` in tests); empty = the recipe's.
        batch_size: tracklets per step; 0 = the recipe's (32). Smaller values make CPU runs bearable.
        num_frames: frames per tracklet; 0 = the recipe's (8).
        steps: timed steps (at most; ``budget_s`` may stop earlier after ``min_steps``).
        warmup: untimed steps first (allocator, cuDNN/cuBLAS autotuning, compile).
        budget_s: time budget of the timed steps.
        min_steps: timed steps always run.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        peak_tflops: the device's peak for MFU; 0 = from :data:`DENSE_16BIT_PEAK_TFLOPS` when known.
        count_flops: count FLOPs with FlopCounterMode (one extra untimed step).
        seed: random data and initialisation.
    """

    recipe: str = "dmca_tvmars_vitb32"
    overrides: tuple[str, ...] = ()
    arch: str = ""
    batch_size: int = 0
    num_frames: int = 0
    steps: int = 10
    warmup: int = 3
    budget_s: float = 120.0
    min_steps: int = 2
    device: str = "auto"
    peak_tflops: float = 0.0
    count_flops: bool = True
    seed: int = 0


def known_peak_tflops(device_name: str, amp: Optional[torch.dtype]) -> Optional[float]:
    """Dense 16-bit peak of a named GPU when training runs under bf16/fp16 autocast, else None."""
    if amp not in (torch.bfloat16, torch.float16):
        return None
    for key, peak in DENSE_16BIT_PEAK_TFLOPS:
        if key in device_name:
            return peak
    return None


def random_batch(cfg: TrainCfg, arch_name: str, batch: int, frames: int, device: torch.device,
                 seed: int) -> dict[str, torch.Tensor]:
    """One training batch of random data, shaped like the data loader's (frames still uint8 ``[B,T,H,W,3]``)."""
    arch = get_arch(arch_name)
    h, w = arch.preprocess.image_size
    rng = np.random.default_rng(seed)
    ctx = arch.text.context_length
    ids = np.zeros((batch, ctx), np.int64)  # [B,77]
    eot = rng.integers(8, 40, size=batch)  # [B] caption lengths like TV-MARS sentences
    for row, end in enumerate(eot):
        ids[row, 0], ids[row, end] = SOT_ID, EOT_ID
        ids[row, 1:end] = rng.integers(1, BPE_MAX, size=end - 1)
    mlm = [mask_tokens(row, rng, cfg.model.mlm_prob, forced=cfg.model.mlm_force) for row in ids]
    out = {
        "frames": torch.from_numpy(rng.integers(0, 256, size=(batch, frames, h, w, 3), dtype=np.uint8)),
        "ids": torch.from_numpy(ids), "eot": torch.from_numpy(eot.astype(np.int64)),
        "pids": torch.arange(batch, dtype=torch.int64),
        "mlm_ids": torch.from_numpy(np.stack([m[0] for m in mlm])),  # [B,77]
        "mlm_labels": torch.from_numpy(np.stack([m[1] for m in mlm])),  # [B,77], 0 = not masked
    }
    return {k: v.to(device) for k, v in out.items()}


def _peak_memory(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30, "cuda_max_memory_allocated"
    # Linux reports ru_maxrss in KiB: the process's lifetime high-water mark, not the step alone.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "process_peak_rss"


def _precision_label(amp: Optional[torch.dtype]) -> str:
    return {torch.bfloat16: "bf16-autocast", torch.float16: "fp16-autocast"}.get(amp, "fp32")


def bench_train_step(cfg: TrainBenchCfg = TrainBenchCfg(),
                     progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Time the DMCA training step of ``cfg.recipe`` on random data.

    Returns:
        A ``train_step`` report row: timing statistics, ``batch``, ``frames_per_tracklet``, ``tracklets_per_s``,
        ``frames_per_s``, ``peak_memory_gib`` + ``peak_memory_kind``, ``flops_per_step``, ``achieved_tflops``,
        ``peak_tflops`` and ``mfu`` (None when the device's peak is unknown), the recipe, arch and last losses.

    Raises:
        FloatingPointError: the loss is not finite (the same guard as training).
    """
    recipe = load_recipe(cfg.recipe, list(cfg.overrides))
    arch_name = cfg.arch or recipe.model.arch
    batch = cfg.batch_size or recipe.data.batch_size
    frames = cfg.num_frames or recipe.data.num_frames
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    arch = get_arch(arch_name)
    model = DMCA(arch, parse_loss_names(recipe.model.losses), num_classes=batch, cmt_depth=recipe.model.cmt_depth,
                 logit_scale=recipe.model.logit_scale).to(device).train()
    if recipe.run.grad_checkpointing:
        model.towers.set_grad_checkpointing(True)
    optimizer = build_optimizer(model, recipe.optim)
    forward = torch.compile(model) if recipe.run.compile else model
    amp = autocast_dtype(device, recipe.run.precision)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    data = random_batch(recipe, arch_name, batch, frames, device, cfg.seed)
    last: dict[str, float] = {}

    def step(runner=forward) -> None:
        inputs = {**data, "frames": normalize_torch(data["frames"], arch.preprocess)}  # [B,T,3,H,W]
        vals = train_step(runner, model, inputs, optimizer, scaler, amp, device, recipe.optim.grad_clip)
        last.update({k: v for k, v in vals.items() if k.endswith("_loss")})

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    flops = None
    if cfg.count_flops:
        from torch.utils.flop_counter import FlopCounterMode

        progress(f"train: counting FLOPs of one step ({arch_name}, batch {batch}×{frames})")
        counter = FlopCounterMode(display=False)
        with counter:
            step(model)  # the eager model: the compiled one runs the same arithmetic
        flops = int(counter.get_total_flops())
    progress(f"train: {cfg.warmup} warm-up + up to {cfg.steps} timed steps on {device}")
    timing = TimingCfg(reps=cfg.steps, warmup=cfg.warmup, budget_s=cfg.budget_s, min_reps=min(cfg.min_steps, cfg.steps))
    result = measure(step, timing, clock=CUDA if device.type == "cuda" else HOST,
                     device=str(device) if device.type == "cuda" else None)  # events on the step's GPU
    peak_gib, peak_kind = _peak_memory(device)
    seconds = result.p50_ms / 1e3
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = cfg.peak_tflops or known_peak_tflops(device_name, amp)
    achieved = flops / seconds / 1e12 if flops else None
    note = ("cuda events around one full step (ends with the loss read back)" if device.type == "cuda"
            else "host wall clock around one full step")
    return make_row(
        "train_step", "torch-compile" if recipe.run.compile else "torch-eager", _precision_label(amp), str(device),
        result, note, batch=batch, frames_per_tracklet=frames, tracklets_per_s=batch / seconds,
        frames_per_s=batch * frames / seconds, peak_memory_gib=peak_gib, peak_memory_kind=peak_kind,
        flops_per_step=flops, achieved_tflops=achieved, peak_tflops=peak,
        mfu=achieved / peak if (achieved and peak) else None, recipe=recipe.name, arch=arch_name,
        losses=recipe.model.losses, grad_checkpointing=recipe.run.grad_checkpointing, last_losses=last)

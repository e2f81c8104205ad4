"""Progress of a ``tvreid bench`` run: one line per stage, with the time spent and an estimate of the time left.

The run is planned as a list of :class:`Stage` (name + a rough cost estimate in seconds, from
:func:`estimate_encoder_s` and friends). Each :meth:`StageClock.start` prints
``[3/11] encoders: ort-cpu int8 on cpu (0:42 so far, about 1:35 left)``. The estimate of what is left is the planned
cost of the remaining stages times the ratio actual/planned of the stages already done (clamped), so a machine
faster or slower than the guess is corrected after the first stages. Stages that were not planned (a name
:meth:`start` does not know) are added on the fly with no estimate.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterable, Optional

#: the reference the per-stage guesses are written for: dmca-vit-b32 on one 2-core AVX-512 CPU
_REF_VISION = 12 * 768 * 768 * 106  # layers × width² × tokens of ViT-B/32 stride 16 at 256×128
_REF_TEXT = 12 * 512 * 512 * 77


@dataclasses.dataclass(frozen=True)
class Stage:
    """One planned step of a run.

    Attributes:
        name: what the progress line says.
        estimate_s: rough expected duration (seconds).
    """

    name: str
    estimate_s: float


def model_cost(arch) -> tuple[float, float]:
    """(vision, text) cost of ``arch`` relative to dmca-vit-b32 (layers × width² × tokens; text 0 without one)."""
    v = arch.vision
    vision = v.layers * v.width ** 2 * v.num_tokens / _REF_VISION
    text = getattr(arch, "text", None)
    text_cost = text.layers * text.width ** 2 * text.context_length / _REF_TEXT if text is not None else 0.0
    return vision, text_cost


def estimate_encoder_s(precision: str, vision: float, text: float, video_frames: int, text_calls: int,
                       overhead_s: float = 4.0) -> float:
    """A guess of one encoder variant's stage: graph build + warm-up + about four timed calls per shape.

    Args:
        precision: fp32 rows cost about three times the bf16/int8/fp16 ones on CPUs with matrix units.
        vision, text: :func:`model_cost`.
        video_frames: frames per video call, summed over the video batch sizes.
        text_calls: text batch sizes summed (items encoded per round).
        overhead_s: session/compile time of a ViT-B graph.
    """
    per_frame = 0.125 if precision == "fp32" else 0.04  # seconds per ViT-B frame on the reference CPU
    per_caption = 0.05 if precision == "fp32" else 0.02
    return overhead_s * max(vision, 0.05) + 5 * (per_frame * vision * video_frames + per_caption * text * text_calls)


def estimate_match_s(gallery_sizes: Iterable[int], n_queries: int, n_matchers: int, dim: int) -> float:
    """A guess of the matching stage: building each random gallery and timing every matcher on it."""
    rows = sum(gallery_sizes) * dim / 512
    return 1.0 + rows / 1e6 * (4.0 + 2.5 * n_queries * n_matchers)


def _clock_text(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


class StageClock:
    """Prints one progress line per stage with elapsed time and the estimated time left.

    Args:
        emit: where lines go (stderr in the CLI).
        stages: the plan (more can be added with :meth:`plan`).
        clock: monotonic seconds (injected by tests).
    """

    def __init__(self, emit: Callable[[str], None], stages: Iterable[Stage] = (),
                 clock: Callable[[], float] = time.monotonic):
        self.emit = emit
        self.clock = clock
        self.stages: list[Stage] = list(stages)
        self.durations: dict[int, float] = {}
        self.current: Optional[int] = None
        self.t0 = clock()
        self._started = self.t0

    def plan(self, stages: Iterable[Stage]) -> None:
        """Append stages to the plan."""
        self.stages += list(stages)

    def replace_pending(self, stages: Iterable[Stage]) -> None:
        """Replace the stages not started yet by ``stages`` (a plan made before the details were known)."""
        keep = [i for i in range(len(self.stages)) if i in self.durations or i == self.current]
        self.stages = [self.stages[i] for i in keep] + list(stages)
        self.durations = {keep.index(i): d for i, d in self.durations.items()}
        self.current = keep.index(self.current) if self.current is not None else None

    def _close(self) -> None:
        if self.current is not None:
            self.durations[self.current] = self.clock() - self._started
            self.current = None

    def remaining_s(self) -> float:
        """Estimated seconds left: planned cost of the stages not finished × (actual / planned so far)."""
        done_plan = sum(self.stages[i].estimate_s for i in self.durations)
        done_real = sum(self.durations.values())
        ratio = min(4.0, max(0.25, done_real / done_plan)) if done_plan > 0 and done_real > 0 else 1.0
        left = sum(s.estimate_s for i, s in enumerate(self.stages) if i not in self.durations)
        if self.current is not None:  # the running stage: what its estimate leaves, never below zero
            spent = self.clock() - self._started
            left -= min(self.stages[self.current].estimate_s, spent / ratio)
        return max(0.0, left * ratio)

    def start(self, name: str) -> None:
        """Close the running stage, start ``name`` (the next planned stage of that name, else a new one) and print
        its line."""
        self._close()
        index = next((i for i, s in enumerate(self.stages) if s.name == name and i not in self.durations), None)
        if index is None:
            self.stages.append(Stage(name, 0.0))
            index = len(self.stages) - 1
        self.current, self._started = index, self.clock()
        self.emit(f"[{index + 1}/{len(self.stages)}] {name} ({_clock_text(self._started - self.t0)} so far, "
                  f"about {_clock_text(self.remaining_s())} left)")

    def finish(self) -> float:
        """Close the running stage; returns the total elapsed seconds (and prints them)."""
        self._close()
        total = self.clock() - self.t0
        self.emit(f"benchmark done in {_clock_text(total)}")
        return total


def encoder_stage(variant) -> str:
    """The stage name of one encoder variant (``encoders: ort-cpu int8 on cpu``)."""
    return f"encoders: {variant.backend} {variant.precision} on {variant.device}"


def plan_sdk_stages(cfg, variants, arch, num_frames: int, n_matchers: int) -> list[Stage]:
    """The stages :func:`~tvreid_sdk.bench.sdk_bench.run_sdk_bench` will go through for ``cfg`` (an
    :class:`~tvreid_sdk.bench.sdk_bench.SdkBenchCfg`), in order, with guessed costs.

    Args:
        cfg: the benchmark config.
        variants: the encoder variants it will time.
        arch: the bundle's architecture (model size).
        num_frames: frames per tracklet of the video graph.
        n_matchers: matchers timed per gallery size.
    """
    vision, text = model_cost(arch)
    stages = []
    if "tokenize" in cfg.tasks:
        stages.append(Stage("tokenizer", 1.5 * len(cfg.tokenizer_batches) * min(cfg.timing.budget_s, 2.0)))
    if "match" in cfg.tasks:
        stages.append(Stage("copy bandwidth + matching",
                            estimate_match_s(cfg.gallery_sizes, len(cfg.queries), n_matchers, arch.output_dim)))
    if "compact_match" in cfg.tasks:
        stages.append(Stage("compact gallery", estimate_match_s([compact_gallery_size(cfg)], len(cfg.queries), 2,
                                                                arch.output_dim) + 3.0))
    if variants and "text_query" in cfg.tasks and arch.spec.has_text:
        stages.append(Stage("text query gallery", 2.0 * e2e_size(cfg) / 1e6))
    frames = sum(cfg.video_batches) * num_frames if "video_embed" in cfg.tasks else 0
    captions = sum(cfg.text_batches) if "text_encode" in cfg.tasks else 0
    for v in variants:
        stages.append(Stage(encoder_stage(v), estimate_encoder_s(v.precision, vision, text, frames, captions)))
    return stages


def e2e_size(cfg) -> int:
    """The end-to-end query's gallery: ``cfg.e2e_gallery_size`` or the largest measured size not above 1M."""
    return cfg.e2e_gallery_size or compact_gallery_size(cfg)


def compact_gallery_size(cfg) -> int:
    """The compact-gallery rows' gallery: the largest measured size not above 1M (else the smallest)."""
    sizes = sorted(cfg.gallery_sizes) or [1_000_000]
    fitting = [n for n in sizes if n <= 1_000_000]
    return fitting[-1] if fitting else sizes[0]

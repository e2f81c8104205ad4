"""TensorRT engine compatibility: compare the manifest with the local side before deserialising a plan."""
from __future__ import annotations

import dataclasses

from ..errors import EngineMismatchError
from .manifest import EngineMeta


@dataclasses.dataclass(frozen=True)
class LocalEngineSide:
    """What this machine offers: TensorRT version and the GPU that would run the plan."""

    trt_version: str
    gpu_name: str
    compute_capability: str
    runtime: str = "tensorrt"


def check_engine_compat(meta: EngineMeta, local: LocalEngineSide, *, plan_name: str = "engine",
                        bundle_path: str = "BUNDLE") -> None:
    """Raise :class:`EngineMismatchError` when a plan was built for another TensorRT or GPU.

    Plans are tied to the TensorRT version and the GPU architecture; deserialising a foreign plan
    fails (or worse), so this check runs before any bytes reach TensorRT.
    """
    problems = []
    if meta.runtime != local.runtime:
        problems.append(f"runtime: plan {meta.runtime}, local {local.runtime}")
    if meta.trt_version != local.trt_version:
        problems.append(f"TensorRT version: plan {meta.trt_version or '?'}, local {local.trt_version}")
    if meta.compute_capability != local.compute_capability:
        problems.append(f"compute capability: plan {meta.compute_capability or '?'} ({meta.gpu_name or '?'}), "
                        f"local {local.compute_capability} ({local.gpu_name})")
    if problems:
        raise EngineMismatchError(
            f"{plan_name} cannot run here — " + "; ".join(problems)
            + f". Rebuild it on this machine: tvreid export {bundle_path}/weights.safetensors --trt --out NEW_BUNDLE")

"""PyTorch backend: the bundle's safetensors weights in our towers (parity, debugging and the bench baseline)."""
from __future__ import annotations

import contextlib

import numpy as np

from ..bundle import Bundle
from ..errors import BackendUnavailableError, BundleError, ConfigError, ModelFormatError
from .base import BACKENDS, Backend


class TorchBackend(Backend):
    """Eager PyTorch on the bundle's fp32 weights; torch is imported only when this backend is built.

    Args:
        bundle: the bundle (needs its ``weights`` artifact).
        device: ``cpu`` or ``cuda[:N]``.
        precision: ``fp32``, ``fp16`` (only on CUDA; LayerNorm stays fp32 inside the towers) or ``bf16``
            (``torch.autocast`` to bfloat16 around fp32 weights, on CPU or CUDA: what a PyTorch user would run on a
            CPU with AMX/AVX512-BF16 units).
    """

    name = "torch"

    def __init__(self, bundle: Bundle, device: str | None = None, precision: str | None = None):
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailableError("the torch backend needs PyTorch: `pip install \"tvreid[train]\"`") from exc
        super().__init__(bundle, device or "cpu")
        from ..modeling.factory import build_inference_towers
        try:
            import safetensors  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailableError("the torch backend needs safetensors: `pip install \"tvreid[train]\"`") from exc
        from ..modeling.weights import load_weights

        art = self.manifest.find("weights", kind="safetensors")
        if art is None:
            raise BundleError(f"{bundle.root}: no weights.safetensors in manifest.json; re-export the bundle")
        self.torch = torch
        self.precision = precision or "fp32"
        if self.precision not in ("fp32", "fp16", "bf16"):
            raise ConfigError(f"torch precision {self.precision!r}: choose fp32, fp16 or bf16")
        self.dtype = torch.float16 if self.precision == "fp16" else torch.float32
        if self.dtype == torch.float16 and not self.device.startswith("cuda"):
            raise BackendUnavailableError("fp16 in the torch backend needs a CUDA device; use precision='fp32'")
        bundle.read(art)  # hash check; the loader below re-validates header, shapes and finiteness
        try:
            model = build_inference_towers(self.manifest.arch, **self._tower_options())  # FamilySpec.towers
        except ConfigError as exc:
            raise BackendUnavailableError(f"{bundle.root}: {exc}; use the onnxruntime backend") from None
        try:
            load_weights(model, bundle.path_of(art), strict=True)
        except ModelFormatError as exc:
            raise BundleError(f"{exc}; re-export the bundle") from None
        self.model = model.eval().to(self.device, self.dtype)

    def _tower_options(self) -> dict:
        """Sizes the architecture does not fix, from the manifest's ``family_cfg`` (tfclip: SIE rows, TMD depth)."""
        return self.manifest.spec.tower_options(self.manifest.family_cfg)

    @property
    def roles(self) -> tuple[str, ...]:
        """Every role of the family: the towers run them all from the one weight file."""
        return self.manifest.spec.roles

    def _mode(self):
        """inference mode, plus bf16 autocast for ``precision='bf16'``."""
        stack = contextlib.ExitStack()
        stack.enter_context(self.torch.inference_mode())
        if self.precision == "bf16":
            stack.enter_context(self.torch.autocast(self.device.split(":")[0], dtype=self.torch.bfloat16))
        return stack

    def _normalise(self, frames: np.ndarray):
        from ..vision.preprocess import normalize_torch  # the one normalisation shared with training

        x = self.torch.from_numpy(frames).to(self.device)  # [...,H,W,3] uint8
        return normalize_torch(x, self.manifest.preprocess).to(self.dtype)  # [...,3,H,W]

    def _run_text(self, ids, eot):
        torch = self.torch
        with self._mode():
            t = self.model.encode_text(torch.from_numpy(ids.astype(np.int64)).to(self.device),
                                       torch.from_numpy(eot.astype(np.int64)).to(self.device))
            return torch.nn.functional.normalize(t.float(), dim=-1).cpu().numpy()

    def _run_video(self, frames, cameras=None):
        torch = self.torch
        with self._mode():
            x = self._normalise(frames)  # [B,T,3,H,W]
            if cameras is None:  # every camera unknown (or a family without camera input)
                v = self.model.encode_video(x)
            else:  # camera ids [B] feed SIE; Backend.encode_video refused them unless takes_cameras
                v = self.model.encode_video(x, torch.from_numpy(cameras.astype(np.int64)).to(self.device))
            return torch.nn.functional.normalize(v.float(), dim=-1).cpu().numpy()

    def _run_frames(self, frames):
        with self._mode():
            return self.model.encode_image(self._normalise(frames)).float().cpu().numpy()


BACKENDS.register("torch", TorchBackend)

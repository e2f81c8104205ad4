"""The public encoder API: text and tracklets in, L2-normalised embeddings out."""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence, Union

import numpy as np

from .backends import create_backend
from .bundle import Bundle, load_bundle
from .errors import ConfigError, QueryRejectedError
from .text import Tokenizer
from .vision.decode import validate_array
from .vision.prepare import ClipPreparer
from .vision.preprocess import resize_frame

Frame = Union[str, os.PathLike, np.ndarray]
TrackletInput = Union[Sequence[Frame], np.ndarray]


class Encoder:
    """Encodes text queries and person tracklets with a bundle's model on one backend.

    Use :meth:`from_bundle`. Every method is safe to call from several threads at once.

    Example:
        >>> enc = Encoder.from_bundle("demo")            # doctest: +SKIP
        >>> q = enc.encode_text(["man in red jacket walking"])  # [1, D]
    """

    def __init__(self, bundle: Bundle, backend):
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.backend = backend
        self.tokenizer = Tokenizer(self.manifest.tokenizer)
        self.preparer = ClipPreparer.from_manifest(self.manifest)  # the one preparation (local and Ray indexing)

    @classmethod
    def from_bundle(cls, path: str | os.PathLike | Bundle, backend: str = "auto", device: str | None = None,
                    precision: str | None = None) -> "Encoder":
        """Open a bundle and start a backend.

        Args:
            path: bundle directory (or an already loaded :class:`Bundle`).
            backend: ``auto`` (TensorRT > ORT-CUDA > OpenVINO on Intel CPUs > ORT-CPU by what is installed and
                present), ``tensorrt``, ``ort-cuda``, ``openvino``, ``ort-cpu`` or ``torch``.
            device: ``cpu`` or ``cuda[:N]`` where the backend allows a choice.
            precision: ``fp32``, ``fp16``, ``bf16`` or ``int8`` as the backend offers; default per backend (fp32 on
                CPU backends).
        """
        bundle = path if isinstance(path, Bundle) else load_bundle(path)
        return cls(bundle, create_backend(bundle, backend, device, precision))

    @classmethod
    def from_triton(cls, url: str, model_prefix: str = "tvreid_", *, model_id: str | None = None,
                    expected_by: str = "the caller", timeout: float = 60.0) -> "Encoder":
        """Encode through a Triton Inference Server holding a repository written by ``tvreid export --format
        triton`` (needs ``pip install "tvreid[triton]"``).

        The server's model configs carry the bundle's manifest: frames are sampled and resized here as the bundle
        says, queries are checked here (empty, too long with ``strict``) and tokenized by the server's
        ``text_query`` ensemble.

        Args:
            url: ``http://HOST:PORT`` or ``grpc://HOST:PORT`` (``https``/``grpcs`` for TLS; ``HOST:PORT`` is HTTP).
            model_prefix: the repository's model name prefix.
            model_id: the model id the server must serve, e.g. ``gallery.model_id``: checked now, before any query.
            expected_by: who holds ``model_id`` (``"gallery G"``), for the error message.
            timeout: seconds for connecting and for each request.

        Raises:
            BackendUnavailableError: no tritonclient, the server unreachable, or no tvreid model with this prefix.
            RemoteModelError: the server serves another model than ``model_id``.
        """
        from .backends.triton import TritonBackend

        backend = TritonBackend(url, model_prefix=model_prefix, model_id=model_id, expected_by=expected_by,
                                timeout=timeout)
        return cls(backend.bundle, backend)

    @property
    def sampler(self):
        """The bundle's :class:`~tvreid_sdk.vision.sampling.FrameSampler` (settable: replaces the preparer's)."""
        return self.preparer.sampler

    @sampler.setter
    def sampler(self, value) -> None:
        self.preparer = dataclasses.replace(self.preparer, sampler=value)

    @property
    def embed_dim(self) -> int:
        """Length of every vector this encoder returns (``arch.output_dim``: 1536 for cffa ViT-B/16 bundles)."""
        return self.manifest.arch.output_dim

    @property
    def model_id(self) -> str:
        """Identifier of the embedding space (galleries are bound to it)."""
        return self.manifest.model_id

    @property
    def model_name(self) -> str:
        """The bundle's name (or its architecture's), as messages show it."""
        return self.manifest.name or self.manifest.arch.name

    def encode_text(self, texts: Sequence[str] | str, truncate: bool = True, *, strict: bool = False,
                    return_truncated: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Queries → float32 ``[N,D]``, L2-normalised (by the text encoder graph itself).

        Args:
            texts: one query or a list of queries.
            truncate: cut queries longer than the model reads (True) or reject them with the tokenizer's message.
            strict: reject a query that does not fit (the first one is named, with the model's token limit)
                instead of silently encoding its first tokens.
            return_truncated: also return which queries were cut: ``(vectors, bool [N])``.

        Returns:
            The vectors, or ``(vectors, truncated)`` with ``return_truncated``.

        Raises:
            QueryRejectedError: empty text, too long with ``strict`` or ``truncate=False``, or a bundle whose family
                has no text encoder (``tfclip``: video-to-video re-identification, which searches by example).
        """
        spec = self.manifest.spec
        if not spec.has_text:
            raise QueryRejectedError(spec.text_rejection(self.model_name))
        if isinstance(texts, str):
            texts = [texts]
        if not len(texts):
            raise QueryRejectedError("no query text given; pass at least one description")
        texts = list(texts)
        batch = self.tokenizer(texts, truncate=truncate or strict)
        if strict and batch.truncated.any():
            row = int(np.flatnonzero(batch.truncated)[0])
            text = texts[row] if len(texts[row]) <= 80 else texts[row][:77] + "..."
            raise QueryRejectedError(
                f"query #{row} {text!r} does not fit the model's {self.manifest.tokenizer.context_length}-token limit "
                "(start/end markers included); shorten it, or call with strict=False to encode its first tokens "
                "(return_truncated=True tells which queries were cut)")
        vectors = self.backend.encode_texts(texts, batch.ids, batch.eot_index)  # [N,D]
        return (vectors, batch.truncated) if return_truncated else vectors  # flags: bool [N], per call

    def prepare_tracklet(self, tracklet: TrackletInput, *, on_bad_frame: str = "fail",
                         skipped: list | None = None) -> np.ndarray:
        """Sample T frames with the bundle's sampler and resize them: ``uint8 [T,H,W,3]``
        (``[C,T,H,W,3]`` clips for the ``dense`` sampler).

        Args:
            tracklet: frame file paths in temporal order, a list of ``uint8 H×W×3`` arrays, or one
                ``uint8 [L,H,W,3]`` array.
            on_bad_frame: ``fail`` raises :class:`CorruptInputError` naming the file and frame index;
                ``skip`` drops undecodable frames (all bad still raises).
            skipped: when given, receives the :class:`~tvreid_sdk.vision.decode.SkippedFrame` of every dropped frame.
        """
        return self.preparer(tracklet, on_bad_frame=on_bad_frame, skipped=skipped)

    def encode_tracklets(self, tracklets: Sequence[TrackletInput], *, on_bad_frame: str = "fail",
                         cameras: Sequence[int | None] | None = None) -> np.ndarray:
        """Tracklets → float32 ``[N,D]``, L2-normalised (DMCA: mean of the per-frame embeddings over the T sampled
        frames; tfclip: ``cat[CLS, projection, TMD]`` of the T frames, 2048-d for ViT-B/16).

        Args:
            tracklets: see :meth:`prepare_tracklet`.
            on_bad_frame: see :meth:`prepare_tracklet`.
            cameras: tfclip bundles trained with a camera embedding (SIE) only: the 0-based camera index of each
                tracklet as in training (MARS ``C1`` → 0), or None where the camera is unknown (no camera embedding).
        """
        if not len(tracklets):
            return np.zeros((0, self.embed_dim), np.float32)
        return self.encode_prepared([self.prepare_tracklet(t, on_bad_frame=on_bad_frame) for t in tracklets],
                                    cameras=cameras)

    def _camera_ids(self, cameras: Sequence[int | None] | None, count: int) -> np.ndarray | None:
        """Checked int32 camera indices ``[N]`` (-1 = unknown), or None when no cameras were given."""
        if cameras is None:
            return None
        num = self.manifest.spec.num_cameras(self.manifest.family_cfg)
        if num < 1:
            raise ConfigError(f"bundle {self.model_name!r} takes no camera input (only bundles whose video encoder "
                              "was exported with one, e.g. tfclip trained with a camera embedding); call without "
                              "cameras=")
        cams = list(cameras)
        if len(cams) != count:
            raise ConfigError(f"got {len(cams)} camera ids for {count} tracklets; give one per tracklet "
                              "(None = unknown)")
        bad = [c for c in cams if c is not None and (isinstance(c, bool) or not isinstance(c, (int, np.integer))
                                                     or not 0 <= int(c) < num)]
        if bad:
            raise ConfigError(f"camera ids {bad[:3]} are outside 0..{num - 1}, the cameras this model was trained "
                              "with; pass None for a camera it has not seen")
        return np.array([-1 if c is None else int(c) for c in cams], dtype=np.int32)

    def encode_prepared(self, clips: Sequence[np.ndarray],
                        cameras: Sequence[int | None] | None = None) -> np.ndarray:
        """Encode outputs of :meth:`prepare_tracklet` (``cameras``: see :meth:`encode_tracklets`): float32 ``[N,D]``,
        L2-normalised."""
        cams = self._camera_ids(cameras, len(clips))  # [N] or None
        if not self.sampler.returns_clips:
            return self.backend.encode_video(np.stack(clips), cams)  # [N,T,H,W,3] -> [N,D]
        # dense: every clip is encoded, clip embeddings are averaged per tracklet and renormalised.
        counts = [c.shape[0] for c in clips]
        clip_cams = None if cams is None else np.repeat(cams, counts)  # [sum C]
        emb = self.backend.encode_video(np.concatenate(clips), clip_cams)  # [sum C,D]
        out = np.stack([part.mean(0) for part in np.split(emb, np.cumsum(counts)[:-1])])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)

    def encode_images(self, images: Sequence[Frame] | np.ndarray, *, on_bad_frame: str = "fail") -> np.ndarray:
        """Single person crops (paths or ``uint8 H×W×3`` arrays, any size) → float32 ``[N,D]``, L2-normalised.

        Each image is a one-frame tracklet: with a still-image bundle (cffa, T = 1) this is exactly its image
        encoder; a video bundle sees the image repeated T times. Use the rows as gallery items or as queries
        ("find this person": ``gallery.search(enc.encode_images([crop]))``).

        Args:
            images: file paths or arrays (a single path or ``H×W×3`` array is one image), or a ``uint8 [N,H,W,3]``
                array.
            on_bad_frame: ``fail`` raises :class:`CorruptInputError` naming the file; ``skip`` has no effect on a
                single image (an undecodable image always raises).
        """
        if isinstance(images, (str, os.PathLike)) or (isinstance(images, np.ndarray) and images.ndim == 3):
            images = [images]
        if not len(images):
            return np.zeros((0, self.embed_dim), np.float32)
        return self.encode_tracklets([[image] for image in images], on_bad_frame=on_bad_frame)

    def encode_frames(self, frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Single frames (uint8 H×W×3, any size) → per-frame float32 ``[N,D]`` before L2-normalisation.

        For streaming: average the rows of one track and normalise to get its tracklet embedding.
        """
        spec = self.manifest.spec
        if not spec.frame_embeddings:
            raise ConfigError(spec.frame_rejection(self.model_name))
        if not len(frames):
            return np.zeros((0, self.embed_dim), np.float32)
        batch = np.stack([resize_frame(validate_array(f, i), self.manifest.preprocess) for i, f in enumerate(frames)])
        return self.backend.encode_frames(batch)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Encoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Encoder({self.manifest.arch.name}, backend={self.backend.describe()}, dim={self.embed_dim})"

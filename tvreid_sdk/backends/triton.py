"""Triton backend: encode through a remote Triton Inference Server holding a repository written by
``tvreid export --format triton`` (HTTP or gRPC, via ``tritonclient``, imported on first use).

Built by :meth:`tvreid_sdk.Encoder.from_triton`, not by name through :data:`~tvreid_sdk.backends.BACKENDS` (it needs
a URL, not a bundle). The server's model configs carry the bundle's manifest and model id (``parameters``
``tvreid.manifest`` / ``tvreid.model_id``), so frames are sampled and resized here exactly as the bundle says, and a
caller holding a gallery gets :class:`~tvreid_sdk.errors.RemoteModelError` before the first query when the server
serves another model. Text goes to the ``<prefix>text_query`` ensemble as strings (the server tokenizes); frames and
tracklets to ``<prefix>frame_encoder`` / ``<prefix>video_encoder``. Calls from several threads run concurrently
(one client per thread), so the server's dynamic batcher sees them together.
"""
from __future__ import annotations

import json
import threading
from urllib.parse import urlsplit

import numpy as np

from ..bundle import Bundle, Manifest
from ..errors import BackendUnavailableError, BundleError, RemoteModelError, TvreidError
from ..modeling.family import ENCODER_ROLES
from .base import Backend

#: model names after the prefix (as export.triton.repository writes them)
TEXT_QUERY = "text_query"
#: Triton DataType name → tritonclient datatype string
CLIENT_TYPES = {"TYPE_FP32": "FP32", "TYPE_FP16": "FP16", "TYPE_UINT8": "UINT8", "TYPE_INT32": "INT32",
                "TYPE_INT64": "INT64", "TYPE_BOOL": "BOOL", "TYPE_STRING": "BYTES", "TYPE_INT8": "INT8"}
DEFAULT_PORTS = {"http": 8000, "https": 8000, "grpc": 8001, "grpcs": 8001}


def _client_module(protocol: str):
    try:
        if protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
    except ImportError as exc:
        raise BackendUnavailableError(f"encoding through Triton needs tritonclient ({exc}); install it with: "
                                      'pip install "tvreid[triton]"') from None
    return module


def parse_url(url: str) -> tuple[str, str, bool]:
    """``(protocol, host:port, ssl)`` of ``http[s]://host[:port]``, ``grpc[s]://host[:port]`` or ``host[:port]``
    (HTTP).

    Raises:
        BackendUnavailableError: another scheme or no host.
    """
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise BackendUnavailableError(f"Triton URL {url!r}: write http://HOST:PORT (default port 8000) or "
                                      "grpc://HOST:PORT (default 8001)")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return ("grpc" if scheme.startswith("grpc") else "http"), f"{host}:{parts.port or DEFAULT_PORTS[scheme]}", \
        scheme.endswith("s")


class RemoteBundle(Bundle):
    """The manifest a Triton server reports for its models; no files are local.

    Args:
        where: the server URL (shown where a bundle directory would be).
        manifest: the manifest of the bundle the repository was exported from.
    """

    def __init__(self, where: str, manifest: Manifest):
        super().__init__(where, manifest)  # root: the URL, for messages

    def read(self, art) -> bytes:
        raise BundleError(f"{self.root}: the model runs on a Triton server; its files are not here")


class TritonBackend(Backend):
    """Runs a bundle's encoders on a Triton server.

    Args:
        url: ``http://HOST:PORT``, ``grpc://HOST:PORT`` (``https``/``grpcs``: TLS) or ``HOST:PORT`` (HTTP).
        model_prefix: the prefix the repository was exported with (``tvreid export --model-prefix``).
        model_id: when given, the model id the server must serve (e.g. a gallery's).
        expected_by: who expects ``model_id``, for the error message (``"gallery G"``).
        timeout: seconds for connecting and for each request.

    Raises:
        BackendUnavailableError: no tritonclient, the server unreachable or not ready, or no ready tvreid model with
            this prefix on it.
        RemoteModelError: the server's models disagree on the model id, or it is not ``model_id``.
    """

    name = "triton"

    def __init__(self, url: str, *, model_prefix: str = "tvreid_", model_id: str | None = None,
                 expected_by: str = "the caller", timeout: float = 60.0):
        self.url, self.prefix, self.timeout = url, model_prefix, timeout
        self.protocol, self._address, self._ssl = parse_url(url)
        self._module = _client_module(self.protocol)
        self._local = threading.local()
        self._clients: list = []
        self._clients_lock = threading.Lock()
        self.configs = self._discover()
        manifest = self._manifest()
        super().__init__(RemoteBundle(url, manifest), device="remote")
        self.max_batch = min(int(c.get("max_batch_size", 0)) or self.max_batch for c in self.configs.values())
        if model_id is not None and model_id != manifest.model_id:
            raise RemoteModelError(
                f"the Triton server at {url} serves model {manifest.name or manifest.arch.name!r} (model id "
                f"{manifest.model_id[:16]}) but {expected_by} holds embeddings of model id {model_id[:16]}; vectors of "
                "different models are not comparable: load the repository exported from that bundle "
                "(`tvreid export BUNDLE --format triton`) on the server, or use a gallery indexed with the served "
                "model")

    # -- connection and discovery --------------------------------------------------------------
    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            kwargs = {"ssl": self._ssl}
            if self.protocol == "http":
                kwargs.update(connection_timeout=self.timeout, network_timeout=self.timeout)
            client = self._module.InferenceServerClient(self._address, **kwargs)
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def _config(self, name: str) -> dict:
        if self.protocol == "grpc":
            return self._client().get_model_config(name, as_json=True, client_timeout=self.timeout)["config"]
        return self._client().get_model_config(name)

    def _discover(self) -> dict[str, dict]:
        try:
            ready = self._client().is_server_ready()
        except Exception as exc:  # noqa: BLE001 - connection refused, DNS, TLS...: one message
            raise BackendUnavailableError(f"the Triton server at {self.url} is not reachable ({_reason(exc)}); start "
                                          "it, or check --triton") from None
        if not ready:
            raise BackendUnavailableError(f"the Triton server at {self.url} is not ready; wait for its models to load")
        configs = {}
        for part in (TEXT_QUERY, *ENCODER_ROLES):
            name = self.prefix + part
            try:
                if self._client().is_model_ready(name):
                    configs[part] = self._config(name)
            except Exception:  # noqa: BLE001 - an unknown model: not served
                continue
        if not configs:
            raise BackendUnavailableError(f"the Triton server at {self.url} has no ready model named "
                                          f"{self.prefix}{{{TEXT_QUERY},{','.join(ENCODER_ROLES)}}}; load a "
                                          "repository written by `tvreid export --format triton` (or give its "
                                          "--model-prefix)")
        return configs

    def _manifest(self) -> Manifest:
        params = {part: {k: v.get("string_value", "") for k, v in (c.get("parameters") or {}).items()}
                  for part, c in self.configs.items()}
        ids = {part: p.get("tvreid.model_id", "") for part, p in params.items()}
        if len(set(ids.values())) != 1 or not next(iter(ids.values())):
            raise RemoteModelError(f"the Triton server at {self.url} serves tvreid models of different or unknown "
                                   f"model ids ({ids}); load one repository written by `tvreid export --format "
                                   "triton` per prefix")
        raw = next(p["tvreid.manifest"] for p in params.values() if p.get("tvreid.manifest"))
        try:
            manifest = Manifest.from_dict(json.loads(raw))
        except (ValueError, TvreidError) as exc:
            raise RemoteModelError(f"the Triton server at {self.url}: its tvreid.manifest parameter is unreadable "
                                   f"({exc}); re-export the repository with this tvreid") from None
        if manifest.model_id != next(iter(ids.values())):
            raise RemoteModelError(f"the Triton server at {self.url}: tvreid.manifest and tvreid.model_id disagree; "
                                   "re-export the repository")
        return manifest

    @property
    def roles(self) -> tuple[str, ...]:
        """The encoder roles the server has a model for."""
        return tuple(r for r in ENCODER_ROLES if r in self.configs)

    # -- inference -----------------------------------------------------------------------------
    def _infer(self, part: str, arrays: list[np.ndarray]) -> np.ndarray:
        config = self.configs.get(part)
        if config is None:
            raise BundleError(f"the Triton server at {self.url} has no ready model {self.prefix}{part}; load the "
                              "whole repository written by `tvreid export --format triton`")
        inputs = []
        for tensor, array in zip(config["input"], arrays):
            dims = [int(d) for d in tensor.get("dims", [])]
            array = array.reshape(array.shape[0], *dims) if len(dims) + 1 != array.ndim else array  # eot [B] -> [B,1]
            item = self._module.InferInput(tensor["name"], list(array.shape), CLIENT_TYPES[tensor["data_type"]])
            item.set_data_from_numpy(array)
            inputs.append(item)
        output = config["output"][0]["name"]
        requested = [self._module.InferRequestedOutput(output)]
        try:
            kwargs = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}
            result = self._client().infer(self.prefix + part, inputs, outputs=requested, **kwargs)
        except Exception as exc:  # noqa: BLE001 - tritonclient's InferenceServerException and transport errors
            raise RemoteModelError(f"the Triton server at {self.url} failed {self.prefix}{part}: {_reason(exc)}") \
                from None
        return np.asarray(result.as_numpy(output), dtype=np.float32)

    def encode_texts(self, texts: list[str], ids: np.ndarray, eot: np.ndarray) -> np.ndarray:
        """Queries → ``[N,D]`` through the ``text_query`` ensemble (the server tokenizes; ``ids``/``eot`` are used
        only without that ensemble)."""
        if TEXT_QUERY not in self.configs:
            return super().encode_texts(texts, ids, eot)
        raw = np.array([[t.encode("utf-8")] for t in texts], dtype=object)  # [N,1]
        return self._batched(lambda s: self._infer(TEXT_QUERY, [raw[s]]), len(texts))

    def _run_text(self, ids, eot):
        return self._infer("text_encoder", [ids, eot])

    def _run_video(self, frames, cameras=None):
        if len(self.configs.get("video_encoder", {}).get("input", [])) > 1:  # camera input (SIE): -1 = unknown
            cams = cameras if cameras is not None else np.full(frames.shape[0], -1, np.int32)
            return self._infer("video_encoder", [frames, cams])
        return self._infer("video_encoder", [frames])

    def _run_frames(self, frames):
        return self._infer("frame_encoder", [frames])

    def _batched(self, fn, n: int) -> np.ndarray:
        """Micro-batches of at most the server's ``max_batch_size``, without the base class's lock: concurrent calls
        are what Triton's dynamic batcher gathers."""
        if n == 0:
            return np.zeros((0, self.manifest.embed_dim), np.float32)
        return np.concatenate([fn(slice(start, min(n, start + self.max_batch))) for start in range(0, n,
                                                                                                    self.max_batch)])

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._local = threading.local()

    def describe(self) -> str:
        return f"triton ({self.url}, {self.protocol}, prefix {self.prefix!r})"


def _reason(exc: Exception) -> str:
    text = exc.message() if callable(getattr(exc, "message", None)) else str(exc)
    return " ".join(str(text).split())[:400] or type(exc).__name__

"""A real Triton server: the ``tritonserver`` of the ``nvidia-pytriton`` wheel (python backend, CPU), in its own
virtual environment (it pins numpy<2), serving the CPU variant of the demo bundle's repository on 127.0.0.1.

The venv is made once under ``$TVREID_TEST_CACHE`` (default ``~/.cache/tvreid-test``) and reused; the tests skip,
saying why, only where the wheel cannot be installed.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from triton_seeds import SEEDS, broken_copy

from cli.main import cli
from export.triton.server import TritonProcess, ensure_venv
from tvreid_sdk import Encoder, Gallery, demo_paths
from tvreid_sdk.errors import QueryRejectedError, RemoteModelError

P = "tvreid_"
TEXTS = ["man in red jacket walking", "a woman with a black bag, Café au lait", "child " * 90]


@pytest.fixture(scope="module")
def venv():
    cache = Path(os.environ.get("TVREID_TEST_CACHE") or Path.home() / ".cache" / "tvreid-test")
    try:
        return ensure_venv(cache / "triton-venv")
    except (RuntimeError, OSError) as exc:  # no network / no wheel for this platform
        pytest.skip(f"the nvidia-pytriton wheel (tritonserver) cannot be installed here: {exc}")


@pytest.fixture(scope="module")
def server(venv, demo_repos):
    with TritonProcess(venv, demo_repos["cpu"]) as srv:
        srv.wait_ready(timeout=180)
        yield srv


@pytest.fixture(scope="module")
def local():
    return Encoder.from_bundle(demo_paths().bundle, backend="ort-cpu")


def _cos(a, b) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_text_query_video_and_frames_equal_the_local_encoder(server, local, protocol):
    url = server.http_url if protocol == "http" else server.grpc_url
    with Encoder.from_triton(url) as remote:
        assert remote.model_id == local.model_id and remote.backend.name == "triton"
        assert remote.backend.roles == ("text_encoder", "video_encoder", "frame_encoder")
        vectors, cut = remote.encode_text(TEXTS, return_truncated=True)
        assert _cos(vectors, local.encode_text(TEXTS)).min() >= 0.9999 and cut.tolist() == [False, False, True]
        rng = np.random.default_rng(0)
        tracklets = [list(rng.integers(0, 256, (n, 80, 40, 3), dtype=np.uint8)) for n in (3, 9, 1)]
        assert _cos(remote.encode_tracklets(tracklets), local.encode_tracklets(tracklets)).min() >= 0.9999
        frames = rng.integers(0, 256, (70, 64, 32, 3), dtype=np.uint8)  # > max_batch_size: two requests
        assert _cos(remote.encode_frames(list(frames)), local.encode_frames(list(frames))).min() >= 0.9999
        with pytest.raises(QueryRejectedError):
            remote.encode_text(["   "])


def test_the_model_id_is_checked_before_the_first_query(server, tmp_path):
    with pytest.raises(RemoteModelError, match=r"gallery G .* model id ffffffff"):
        Encoder.from_triton(server.grpc_url, model_id="f" * 64, expected_by="gallery G")
    Gallery.create(tmp_path / "other", model_id="f" * 64, embed_dim=64).close()
    result = CliRunner().invoke(cli, ["match", "man in red", "--gallery", str(tmp_path / "other"), "--triton",
                                      server.http_url])
    assert result.exit_code == 2 and "serves model" in result.output and "other" in result.output, result.output


def test_index_match_and_serve_through_triton(server, tmp_path, local):
    runner = CliRunner()
    synth = tmp_path / "synth"
    assert runner.invoke(cli, ["synth", "--out", str(synth), "--ids", "3", "--image-size", "64x32"]).exit_code == 0
    for name, extra in (("remote", ["--triton", server.grpc_url]), ("local", [])):
        result = runner.invoke(cli, ["index", str(synth), "--gallery", str(tmp_path / name), "--quiet", *extra])
        assert result.exit_code == 0, result.output
    with Gallery.open(tmp_path / "remote") as remote, Gallery.open(tmp_path / "local") as here:
        keys = sorted(here.keys())
        assert sorted(remote.keys()) == keys and remote.model_id == local.model_id
        a = np.stack([remote.get(k).embedding for k in keys])
        assert _cos(a, np.stack([here.get(k).embedding for k in keys])).min() >= 0.9999
    result = runner.invoke(cli, ["match", "person", "--gallery", str(tmp_path / "remote"), "--triton",
                                 server.http_url, "--json"])
    assert result.exit_code == 0 and '"results"' in result.output, result.output
    from tvreid_sdk.serve.app import ServeCfg, Service

    service = Service.load(ServeCfg(gallery=str(tmp_path / "remote"), triton=server.grpc_url,
                                    state=str(tmp_path / "state")))
    try:
        assert service.encoder.backend.name == "triton" and service.encoder.model_id == local.model_id
    finally:
        service.close()


def test_concurrent_requests_are_batched(server):
    """Dynamic batching is real: fewer encoder executions than inferences under concurrent load."""
    import tritonclient.http as httpclient

    address = server.http_url.removeprefix("http://")
    before = _stats(httpclient.InferenceServerClient(address), P + "text_encoder")
    encoder = Encoder.from_triton(server.http_url)

    def client(i: int) -> None:
        for j in range(12):
            encoder.encode_text([f"person number {i} in scene {j}"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    stats = httpclient.InferenceServerClient(address)
    deadline = time.monotonic() + 30  # Triton updates its statistics after the responses go out
    while True:
        inferences, executions = (a - b for a, b in zip(_stats(stats, P + "text_encoder"), before))
        if inferences >= 16 * 12 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert inferences == 16 * 12 and executions < inferences
    encoder.close()


def _stats(client, model) -> tuple[int, int]:
    stats = client.get_inference_statistics(model)["model_stats"][0]
    return int(stats["inference_count"]), int(stats["execution_count"])


def test_triton_refuses_the_broken_repository_naming_what_our_checker_names(venv, demo_repos, tmp_path):
    from export.triton.check import check_repository

    broken = broken_copy(demo_repos["cpu"], tmp_path / "broken")
    ours = check_repository(broken)
    srv = TritonProcess(venv, broken).start()
    try:
        assert srv.wait_exit(timeout=180) != 0  # Triton exits when models fail to load (--exit-on-error default)
        lines = srv.log().splitlines()
    finally:
        srv.stop()
        srv.cleanup()
    for seed in SEEDS:
        assert any(p.model == seed.model and p.field == seed.field and seed.term in str(p) for p in ours), seed
        # Triton's own words: the model and the field/tensor on one line, or a protobuf parse error naming the field
        # right before the line that names the model
        windows = [" ".join(lines[i:i + 2]) for i in range(len(lines))]
        assert any(seed.model in w and seed.term in w for w in windows), (seed, "\n".join(lines[-60:]))

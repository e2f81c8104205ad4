"""SDK benchmark on the tiny-test bundle: rows per backend and batch, baselines and ratios, honest skips."""
import types

import pytest

from tvreid_sdk.bench import SdkBenchCfg, TimingCfg, build_report, run_sdk_bench, validate_report
from tvreid_sdk.bench.device import cuda_available
from tvreid_sdk.bench.sdk_bench import available_backends, backend_variants, e2e_gallery_size
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.cpuinfo import host_cpu, parse_cpuinfo
from tvreid_sdk.modeling.family import get_family
from tvreid_sdk.registry import module_available

FAST = TimingCfg(reps=3, warmup=1, budget_s=1.0)


@pytest.fixture(scope="module")
def result(bench_bundle):
    cfg = SdkBenchCfg(backends=("ort-cpu", "torch"), text_batches=(1, 3), video_batches=(2,), tokenizer_batches=(1, 8),
                      gallery_sizes=(400, 900), queries=(1, 2), k=5, matchers=("numpy", "torch"),
                      copy_bytes=2**20, device="cpu", timing=FAST)
    return run_sdk_bench(bench_bundle, cfg)


def _rows(result, task):
    return [r for r in result.rows if r["task"] == task]


def test_every_task_has_rows_per_backend_and_shape(result):
    bf16 = [("torch", "bf16")] if host_cpu().has_bf16 else []  # PyTorch bf16 autocast where the CPU has bf16 units
    assert [r["batch"] for r in _rows(result, "tokenize")] == [1, 8]
    assert [(r["backend"], r["precision"], r["batch"]) for r in _rows(result, "text_encode")] == [
        (b, p, n) for b, p in [("ort-cpu", "fp32"), ("torch", "fp32"), *bf16] for n in (1, 3)]
    video = _rows(result, "video_embed")
    assert [(r["backend"], r["precision"], r["batch"], r["frames_per_tracklet"]) for r in video] == [
        (b, p, 2, 4) for b, p in [("ort-cpu", "fp32"), ("torch", "fp32"), *bf16]]
    for r in video:
        assert r["frames_per_s"] == pytest.approx(4 * r["tracklets_per_s"])
        assert r["tracklets_per_s"] == pytest.approx(2 / (r["p50_ms"] / 1e3))
    assert len(_rows(result, "match")) == 2 * 2 * 2
    assert len(_rows(result, "copy_bandwidth")) == 1
    queries = _rows(result, "text_query")
    assert [(r["backend"], r["precision"], r["matcher"], r["gallery_size"], r["k"]) for r in queries] == [
        (b, p, "numpy-fp32", 900, 5) for b, p in [("ort-cpu", "fp32"), ("torch", "fp32"), *bf16]]
    compact = _rows(result, "compact_match")
    assert [(r["gallery_size"], r["queries"]) for r in compact] == [(900, 1), (900, 2)]
    assert all(r["recall_at_k"] >= 0.9 and r["ram_reduction"] >= 3.5 for r in compact)
    for r in result.rows:
        assert r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] and r["reps"] >= 3 and r["device"] and r["precision"]


def test_text_rows_say_how_many_columns_the_graph_ran(result):
    """ort-cpu feeds the dynamic-token graph up to the last EOT; torch runs all 77; the report says so once."""
    tokens = {(r["backend"], r["batch"]): r["tokens"] for r in _rows(result, "text_encode")}
    assert 2 <= tokens[("ort-cpu", 1)] < 77 and tokens[("torch", 1)] == 77
    assert sum("tokens < 77" in n for n in result.notes) == 1


def test_ratios_to_the_pytorch_eager_baseline_are_in_the_report(result):
    report = build_report(result.rows, device={"kind": "cpu", "name": "x"}, versions={}, skipped=result.skipped)
    assert validate_report(report) == []
    for row in report["rows"]:
        if row["task"] in ("text_encode", "video_embed", "text_query"):
            base = next(r for r in report["rows"] if r["task"] == row["task"] and r["backend"] == "torch"
                        and r["precision"] == "fp32" and r.get("batch") == row.get("batch"))
            assert row["speedup_vs"]["torch-fp32"] == pytest.approx(base["p50_ms"] / row["p50_ms"])


@pytest.mark.skipif(cuda_available(), reason="CPU-only expectations")
def test_gpu_only_variants_are_skipped_with_reasons_on_cpu(bench_bundle, result):
    assert any(s["backend"] == "torch" and s["precision"] == "fp16" and "CUDA" in s["reason"] for s in result.skipped)
    assert available_backends(bench_bundle, "cpu") == ["ort-cpu", *(["openvino"] if module_available("openvino")
                                                                     else []), "torch"]
    variants, skipped = backend_variants(bench_bundle, ["ort-cuda", "tensorrt"], "cpu")
    assert variants == []
    assert [s["backend"] for s in skipped] == ["ort-cuda", "tensorrt"]
    assert "--trt" in skipped[1]["reason"]


@pytest.mark.parametrize("family, role", [("dmca", "text_encoder"), ("tfclip", "video_encoder")])
def test_gpu_variants_come_from_the_family_s_main_encoder(family, role):
    art = lambda kind, r, p: types.SimpleNamespace(kind=kind, role=r, precision=p)  # noqa: E731
    other = "video_encoder" if role == "text_encoder" else "frame_encoder"
    artifacts = [art("onnx", role, "fp32"), art("onnx", role, "fp16"), art("trt_plan", role, "fp16"),
                 art("onnx", other, "fp32-fused")]  # another role's variants are not offered
    bundle = types.SimpleNamespace(manifest=types.SimpleNamespace(spec=get_family(family), artifacts=artifacts))
    variants, skipped = backend_variants(bundle, ["ort-cuda", "tensorrt"], "cuda:0")
    assert [(v.backend, v.precision, v.device) for v in variants] == [
        ("ort-cuda", "fp16", "cuda:0"), ("ort-cuda", "fp32", "cuda:0"), ("tensorrt", "fp16", "cuda:0")]
    assert skipped == []


def test_unknown_backend_and_bad_config_are_rejected(bench_bundle):
    with pytest.raises(KeyError, match="unknown backend 'onnx-gpu'"):
        backend_variants(bench_bundle, ["onnx-gpu"], "cpu")
    with pytest.raises(ConfigError, match="k=50"):
        SdkBenchCfg(gallery_sizes=(10, 100), k=50)
    with pytest.raises(ConfigError, match="unknown bench task"):
        SdkBenchCfg(tasks=("latency",))
    with pytest.raises(ConfigError, match="positive integers"):
        SdkBenchCfg(queries=(0,))


def test_end_to_end_gallery_is_the_largest_measured_size_up_to_one_million():
    assert e2e_gallery_size(SdkBenchCfg(gallery_sizes=(100_000, 1_000_000, 10_000_000))) == 1_000_000
    assert e2e_gallery_size(SdkBenchCfg(gallery_sizes=(10_000_000,), k=10)) == 10_000_000
    assert e2e_gallery_size(SdkBenchCfg(gallery_sizes=(1000,), e2e_gallery_size=500, k=10)) == 500


@pytest.mark.parametrize("installed, listed", [({"tensorrt"}, True), ({"tensorrt_rtx_bindings"}, True),
                                               ({"tensorrt_rtx"}, False), (set(), False)])
def test_tensorrt_is_offered_on_a_gpu_when_a_module_the_backend_imports_is_installed(monkeypatch, installed, listed):
    """The backend imports ``tensorrt`` or ``tensorrt_rtx_bindings`` (there is no ``tensorrt_rtx`` module)."""
    import types

    from tvreid_sdk.bench import sdk_bench

    real_available = sdk_bench.module_available
    monkeypatch.setattr(sdk_bench, "module_available",
                        lambda name: name in installed or (not name.startswith("tensorrt") and real_available(name)))
    monkeypatch.setattr(sdk_bench, "cuda_provider_available", lambda: False)
    bundle = types.SimpleNamespace(manifest=types.SimpleNamespace(artifacts=[types.SimpleNamespace(kind="trt_plan")]))
    assert ("tensorrt" in available_backends(bundle, "cuda")) is listed
    assert "tensorrt" not in available_backends(bundle, "cpu")


def test_bf16_rows_only_where_the_cpu_has_bf16_units(bench_bundle):
    amx = parse_cpuinfo("vendor_id: GenuineIntel\nmodel name: Xeon\nflags: avx512f amx_bf16 amx_int8\n", 2)
    epyc = parse_cpuinfo("vendor_id: AuthenticAMD\nmodel name: AMD EPYC 7763\nflags: avx2 avx512f\n", 2)
    variants, skipped = backend_variants(bench_bundle, ["torch", "openvino"], "cpu", cpu=amx)
    assert [(v.backend, v.precision) for v in variants] == [("torch", "fp32"), ("torch", "bf16"),
                                                            ("openvino", "fp32"), ("openvino", "bf16")]
    variants, skipped = backend_variants(bench_bundle, ["torch", "openvino"], "cpu", cpu=epyc)
    assert [(v.backend, v.precision) for v in variants] == [("torch", "fp32"), ("openvino", "fp32")]
    reasons = {(s["backend"], s["precision"]): s["reason"] for s in skipped}
    assert reasons[("torch", "bf16")].startswith("bf16 autocast: not supported on this CPU (no avx512_bf16/amx_bf16")
    assert "AMD EPYC 7763" in reasons[("openvino", "bf16")]

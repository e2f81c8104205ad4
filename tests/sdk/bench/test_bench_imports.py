"""The benchmark core is part of the torch-free SDK: importing it loads neither torch nor the upper layers."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_importing_the_bench_package_loads_no_torch_faiss_or_upper_layers():
    code = ("import sys, tvreid_sdk.bench, tvreid_sdk.bench.matching, tvreid_sdk.bench.faiss_flat, "
            "tvreid_sdk.bench.device\nprint(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    mods = set(out.stdout.split())
    assert "tvreid_sdk.bench.sdk_bench" in mods
    for heavy in ("torch", "faiss", "tensorrt", "training", "export", "cli"):
        assert heavy not in mods, heavy

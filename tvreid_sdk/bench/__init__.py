"""``tvreid bench``'s measurement core: timing, SDK benchmarks, JSON/markdown reports (torch-free at import)."""
from .report import build_report, to_markdown, validate_report, write_atomic, write_json
from .sdk_bench import TASKS, SdkBenchCfg, SdkBenchResult, run_sdk_bench
from .timing import Timing, TimingCfg, measure, time_cuda, time_host

__all__ = ["TASKS", "SdkBenchCfg", "SdkBenchResult", "Timing", "TimingCfg", "build_report", "measure",
           "run_sdk_bench", "time_cuda", "time_host", "to_markdown", "validate_report", "write_atomic", "write_json"]

"""Benchmark rows → the shared JSON report (same schema as ``cpp_bench``) and a markdown table with ratios.

Every row names ``task``, ``backend``, ``precision``, ``device`` and, where it applies, ``batch``; timing fields
are ``p50_ms, p95_ms, p99_ms, mean_ms, min_ms, max_ms, reps`` plus ``clock`` (``host`` or ``cuda``) and a
``timing`` sentence saying what the clock covers. Things that could not be measured go to ``skipped`` with a
reason instead of disappearing.

Ratios: ``speedup_vs[<baseline>] = baseline p50 / row p50`` (above 1 = faster than the baseline) against the rows
of the same task and shape (batch, gallery size, queries, k, matcher). Baselines are the PyTorch backend
(``torch-fp32`` eager, ``torch-fp16`` on CUDA, ``torch-bf16`` autocast) for encoders and end-to-end queries, and
the torch matcher and FAISS flat IP for matching. Encoder and end-to-end rows also get ``vs_best_torch``: the ratio
to the fastest PyTorch row of the same precision class (:data:`PRECISION_CLASS`: fp32, or reduced = fp16/bf16/int8)
and shape, naming which row that was; the markdown shows it beside the ratio to fp32 eager.
"""
from __future__ import annotations

import datetime
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from .._version import __version__
from .timing import Timing

TOOL = "tvreid-bench"
ROW_REQUIRED = ("task", "backend", "precision", "device", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "reps")
REPORT_REQUIRED = ("tool", "version", "device", "versions", "date", "rows")
# task -> backends whose rows are baselines for the other rows of that task
BASELINES = {"text_encode": ("torch",), "video_embed": ("torch",), "text_query": ("torch",),
             "match": ("torch", "faiss-flat-ip")}
SHAPE_KEYS = ("batch", "gallery_size", "queries", "k", "matcher")
#: precision → class; rows are compared with the best PyTorch row of their class (anything not fp32 is reduced)
PRECISION_CLASS = {"fp32": "fp32", "tf32": "fp32"}
ENCODER_TASKS = ("text_encode", "video_embed", "text_query")


def precision_class(precision: str) -> str:
    return PRECISION_CLASS.get(precision, "reduced")


def make_row(task: str, backend: str, precision: str, device: str, timing: Timing, timing_note: str,
             **fields: Any) -> dict[str, Any]:
    """One measured row: identity fields, timing statistics, then task-specific ``fields``."""
    return {"task": task, "backend": backend, "precision": precision, "device": device, **timing.stats(),
            "timing": timing_note, **fields}


def skipped_row(task: str, backend: str, precision: str, reason: str, **fields: Any) -> dict[str, Any]:
    """An entry of the report's ``skipped`` list: what was not measured, and why."""
    return {"task": task, "backend": backend, "precision": precision, **fields, "reason": reason}


def baseline_label(row: dict[str, Any]) -> str:
    return f"{row['backend']}-{row['precision']}"


def _shape(row: dict[str, Any]) -> tuple:
    return (row["task"], *(row.get(k) for k in SHAPE_KEYS))


def add_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill ``speedup_vs`` on every row of a task that has baselines, and ``cost_vs_q1`` on match rows.

    A baseline that was not measured for a shape is absent from that row's ``speedup_vs`` (never guessed).
    """
    base: dict[tuple, dict[str, float]] = {}
    for row in rows:
        if row["backend"] in BASELINES.get(row["task"], ()):
            base.setdefault(_shape(row), {})[baseline_label(row)] = row["p50_ms"]
    q1 = {(r["backend"], r["precision"], r.get("gallery_size"), r.get("k")): r["p50_ms"]
          for r in rows if r["task"] == "match" and r.get("queries") == 1}
    numpy_fp32 = {(r.get("gallery_size"), r.get("queries"), r.get("k")): r["p50_ms"] for r in rows
                  if r["task"] == "match" and r["backend"] == "numpy" and r["precision"] == "fp32"}
    best: dict[tuple, tuple[str, float]] = {}  # (shape, class) -> fastest torch row
    for row in rows:
        if row["task"] in ENCODER_TASKS and row["backend"] == "torch":
            key = (_shape(row), precision_class(row["precision"]))
            if key not in best or row["p50_ms"] < best[key][1]:
                best[key] = (baseline_label(row), row["p50_ms"])
    for row in rows:
        if row["task"] in BASELINES:
            row["speedup_vs"] = {label: p50 / row["p50_ms"] for label, p50 in base.get(_shape(row), {}).items()
                                 if row["p50_ms"] > 0}
        found = best.get((_shape(row), precision_class(row["precision"])))
        if row["task"] in ENCODER_TASKS and found is not None and row["p50_ms"] > 0:
            row["vs_best_torch"] = {"baseline": found[0], "speedup": found[1] / row["p50_ms"]}
        exact = numpy_fp32.get((row.get("gallery_size"), row.get("queries"), row.get("k")))
        if row["task"] == "compact_match" and exact and row["p50_ms"] > 0:  # same shape, other (random) data
            row["vs_numpy_fp32"] = exact / row["p50_ms"]
        if row["task"] == "match":
            one = q1.get((row["backend"], row["precision"], row.get("gallery_size"), row.get("k")))
            row["cost_vs_q1"] = row["p50_ms"] / one if one else None
    return rows


def build_report(rows: list[dict[str, Any]], *, device: dict[str, Any], versions: dict[str, str],
                 skipped: Iterable[dict[str, Any]] = (), command: str = "", notes: Iterable[str] = (),
                 **extra: Any) -> dict[str, Any]:
    """The top-level JSON object (``tool, version, device, versions, date, rows`` + ``skipped``, ``notes``...)."""
    return {"tool": TOOL, "version": __version__, "device": device, "versions": versions,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": command, **extra, "rows": add_ratios(list(rows)), "skipped": list(skipped),
            "notes": list(notes)}


def validate_report(report: dict[str, Any]) -> list[str]:
    """Schema problems of a report (empty when valid): missing fields, unordered percentiles, bad reps."""
    problems = [f"missing top-level field {key!r}" for key in REPORT_REQUIRED if key not in report]
    device = report.get("device", {})
    if not isinstance(device, dict) or "kind" not in device or "name" not in device:
        problems.append("device must be an object with 'kind' and 'name'")
    for i, row in enumerate(report.get("rows", [])):
        missing = [key for key in ROW_REQUIRED if key not in row]
        if missing:
            problems.append(f"row {i} ({row.get('task')}) lacks {missing}")
            continue
        if not row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]:
            problems.append(f"row {i} ({row['task']}/{row['backend']}): percentiles out of order")
        if not (isinstance(row["reps"], int) and row["reps"] >= 1):
            problems.append(f"row {i}: reps must be a positive integer")
    for i, row in enumerate(report.get("skipped", [])):
        if not row.get("reason"):
            problems.append(f"skipped entry {i} has no reason")
    return problems


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temp file in the same folder + fsync + rename (never a half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(report: dict[str, Any], path: str | os.PathLike) -> Path:
    return write_atomic(path, json.dumps(report, indent=2, sort_keys=False) + "\n")


# -- markdown ------------------------------------------------------------------------------------------------------
def _num(value: Optional[float], digits: int = 2) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"


def _count(value: Optional[int]) -> str:
    if value is None:
        return "-"
    for div, unit in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if value >= div and value % (div // 10) == 0:
            return f"{value / div:g}{unit}"
    return str(value)


def _ratios(labels: tuple[str, ...]) -> list[tuple[str, Callable]]:
    return [(f"× {label}", lambda r, lb=label: _num(r.get("speedup_vs", {}).get(lb))) for label in labels]


_ID = [("backend", lambda r: r["backend"]), ("precision", lambda r: r["precision"]), ("device", lambda r: r["device"])]
_P = [("p50 ms", lambda r: _num(r["p50_ms"])), ("p95 ms", lambda r: _num(r["p95_ms"])),
      ("p99 ms", lambda r: _num(r["p99_ms"])), ("reps", lambda r: str(r["reps"]))]
def _best_torch(row: dict[str, Any]) -> str:
    best = row.get("vs_best_torch")
    return f"{_num(best['speedup'])} ({best['baseline'].removeprefix('torch-')})" if best else "-"


# encoders: against fp32 eager, and against the fastest PyTorch row of the same precision class (named)
_ENC_RATIOS = _ratios(("torch-fp32",)) + [("× best torch, same class", _best_torch)]
COLUMNS: dict[str, tuple[str, list[tuple[str, Callable]]]] = {
    "tokenize": ("Tokenizer (CLIP BPE, pure Python, word cache warm)",
                 _ID + [("batch", lambda r: str(r["batch"]))] + _P
                 + [("captions/s", lambda r: _num(r.get("items_per_s")))]),
    "text_encode": ("Text encoder (token ids on the host → embeddings on the host)",
                    _ID + [("batch", lambda r: str(r["batch"]))] + _P
                    + [("queries/s", lambda r: _num(r.get("items_per_s")))] + _ENC_RATIOS),
    "video_embed": ("Video encoder (uint8 frames on the host → embeddings on the host)",
                    _ID + [("batch", lambda r: str(r["batch"])), ("T", lambda r: str(r.get("frames_per_tracklet")))]
                    + _P + [("tracklets/s", lambda r: _num(r.get("tracklets_per_s"))),
                            ("frames/s", lambda r: _num(r.get("frames_per_s")))] + _ENC_RATIOS),
    "copy_bandwidth": ("Copy bandwidth (bytes read + bytes written per second)",
                       _ID + [("MiB", lambda r: _num(r.get("bytes", 0) / 2**20))] + _P
                       + [("GB/s", lambda r: _num(r.get("gb_per_s")))]),
    "match": ("Exact top-k matching (queries on the host → ids on the host)",
              _ID + [("N", lambda r: _count(r.get("gallery_size"))), ("Q", lambda r: str(r.get("queries"))),
                     ("k", lambda r: str(r.get("k")))] + _P
              + [("GB/s", lambda r: _num(r.get("gb_per_s"))),
                 ("% copy bw", lambda r: _num(100 * r["bandwidth_fraction"]) if r.get("bandwidth_fraction") else "-"),
                 ("cost vs Q=1", lambda r: _num(r.get("cost_vs_q1")))]
              + _ratios(("torch-fp32", "torch-fp16", "faiss-flat-ip-fp32", "faiss-flat-ip-fp16"))),
    "compact_match": ("Compact gallery matrix (int8 codes + exact float32 re-rank) vs float32 exact, clustered "
                      "synthetic gallery",
                      _ID + [("N", lambda r: _count(r.get("gallery_size"))), ("Q", lambda r: str(r.get("queries"))),
                             ("k", lambda r: str(r.get("k"))), ("re-rank", lambda r: f"k×{r.get('rerank')}")] + _P
                      + [("matrix MiB", lambda r: f"{_num(r.get('matrix_mib'))} "
                                                  f"(fp32 {_num(r.get('fp32_matrix_mib'))})"),
                         ("RAM ×less", lambda r: _num(r.get("ram_reduction"))),
                         ("recall@k vs fp32", lambda r: f"{r['recall_at_k']:.4f}" if "recall_at_k" in r else "-"),
                         ("× numpy-fp32 exact", lambda r: _num(r.get("vs_numpy_fp32")))]),
    "text_query": ("End-to-end text query (tokenise → encode → match → top-k ids on the host)",
                   _ID + [("matcher", lambda r: r.get("matcher", "-")), ("N", lambda r: _count(r.get("gallery_size"))),
                          ("k", lambda r: str(r.get("k")))] + _P + _ENC_RATIOS),
    "train_step": ("Training step (DMCA faithful recipe, random data, no data loading)",
                   _ID + [("batch×T", lambda r: f"{r['batch']}×{r.get('frames_per_tracklet')}")] + _P
                   + [("tracklets/s", lambda r: _num(r.get("tracklets_per_s"))),
                      ("peak mem GiB", lambda r: f"{_num(r.get('peak_memory_gib'))} ({r.get('peak_memory_kind')})"),
                      ("TFLOP/step", lambda r: _num((r.get("flops_per_step") or 0) / 1e12, 3)),
                      ("achieved TFLOP/s", lambda r: _num(r.get("achieved_tflops"), 3)),
                      ("MFU", lambda r: f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a")]),
}


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, Callable]]) -> list[str]:
    used = [(h, f) for h, f in columns if not h.startswith("×") or any(f(r) != "-" for r in rows)]
    lines = ["| " + " | ".join(h for h, _ in used) + " |", "|" + "---|" * len(used)]
    lines += ["| " + " | ".join(f(r) for _, f in used) + " |" for r in rows]
    return lines


def _device_line(device: dict[str, Any]) -> str:
    parts = [f"{device.get('kind')}: {device.get('name')}"]
    for key in ("logical_cpus", "compute_capability", "memory_gib", "load_avg_1m"):
        if device.get(key) is not None:
            parts.append(f"{key} {device[key]}")
    if "matrix_features" in device:
        parts.append("matrix features " + (" ".join(device["matrix_features"]) or "none"))
        parts.append(f"bf16 units {'yes' if device.get('bf16_units') else 'no'}")
    return ", ".join(parts)


def to_markdown(report: dict[str, Any]) -> str:
    """Human-readable report: header (device, versions, date, command), one table per task, skipped, notes."""
    out = [f"### `{TOOL}` {report['version']} — {report['date']}", "",
           f"- device: {_device_line(report['device'])}",
           "- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items())]
    if report.get("command"):
        out.append(f"- command: `{report['command']}`")
    if report.get("bundle"):
        b = report["bundle"]
        out.append(f"- model: {b.get('arch')} (T={b.get('num_frames')}, D={b.get('embed_dim')}), "
                   f"random weights, bundle {b.get('source')}")
    out.append("- speed-up columns `× X` = p50 of baseline X / p50 of the row (above 1: faster than X); `× best "
               "torch, same class` = against the fastest PyTorch row of the same precision class (fp32, or reduced: "
               "fp16/bf16/int8), named in brackets")
    for task, (title, columns) in COLUMNS.items():
        rows = [r for r in report["rows"] if r["task"] == task]
        if rows:
            out += ["", f"**{title}**", "", *_table(rows, columns)]
    if report.get("skipped"):
        out += ["", "**Not measured**", ""]
        for s in report["skipped"]:
            shape = ", ".join(f"{k}={s[k]}" for k in ("batch", "gallery_size", "queries") if s.get(k) is not None)
            out.append(f"- {s['task']} / {s['backend']} {s['precision']}{f' ({shape})' if shape else ''}: "
                       f"{s['reason']}")
    if report.get("notes"):
        out += ["", "**Notes**", "", *[f"- {n}" for n in report["notes"]]]
    return "\n".join(out) + "\n"

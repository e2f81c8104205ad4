"""Seeded mistakes for Triton repositories: what each one is, and what the checker and Triton must name."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

PREFIX = "tvreid_"


@dataclasses.dataclass(frozen=True)
class Seed:
    """One mistake: ``old`` → ``new`` in ``model``'s config; the checker must report ``field`` for ``model`` and
    mention ``term`` (the name Triton's own error uses)."""

    model: str
    old: str
    new: str
    field: str
    term: str


#: the four mistakes of the issue: field typo, INT64-vs-INT32 dtype, missing reshape, bad ensemble wiring
SEEDS = (
    Seed(PREFIX + "tokenizer", "max_batch_size:", "max_batch_sizes:", "max_batch_sizes", "max_batch_sizes"),
    Seed(PREFIX + "text_encoder", 'name: "input_ids"\n  data_type: TYPE_INT32',
         'name: "input_ids"\n  data_type: TYPE_INT64',
         "input[input_ids].data_type", "input_ids"),
    Seed(PREFIX + "text_encoder", "  reshape {\n  }\n", "", "input[eot_index].dims", "eot_index"),
    Seed(PREFIX + "text_query", 'key: "eot_index"\n      value: "eot_index"\n    }\n    input_map',
         'key: "eot_index"\n      value: "eot_idx"\n    }\n    input_map',
         "ensemble_scheduling.step[1].input_map[eot_index]", "eot_idx"),
)


def seed(repo: Path, seeds=SEEDS) -> Path:
    """Apply ``seeds`` to the configs of ``repo`` (in place)."""
    for s in seeds:
        config = Path(repo) / s.model / "config.pbtxt"
        text = config.read_text()
        assert s.old in text, (s.model, s.old)
        config.write_text(text.replace(s.old, s.new, 1))
    return Path(repo)


def broken_copy(repo: Path, dest: Path, seeds=SEEDS) -> Path:
    shutil.copytree(repo, dest)
    return seed(dest, seeds)

"""Every shipped recipe resolves to the values it had before the TF-CLIP loop joined the shared engine.

``recipes_resolved.json`` was written by the old loaders (``training.config.load_recipe`` for dmca/cffa recipes,
``training.tfclip.config.load_tfclip_recipe`` with its own run section for tfclip recipes). The one ``RunSection``
added ``compile`` and ``grad_checkpointing`` to TF-CLIP recipes, both off: the only differences allowed.
"""
import json
from pathlib import Path

import pytest

from training.config import RECIPE_DIR, RunSection
from training.families import TRAIN_FAMILIES, load_train_recipe, recipe_family

RECORDED = json.loads((Path(__file__).parent / "recipes_resolved.json").read_text())
NEW_RUN_FIELDS = {"compile": False, "grad_checkpointing": False}  # what TF-CLIP's old run section lacked


def test_every_shipped_recipe_is_recorded():
    assert sorted(RECORDED) == sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recipe_resolves_to_its_recorded_values(name):
    cfg = load_train_recipe(name)
    assert isinstance(cfg, TRAIN_FAMILIES.get(recipe_family(name)).cfg_cls)
    assert isinstance(cfg.run, RunSection)
    got, want = cfg.to_dict(), RECORDED[name]
    added = {k: got["run"][k] for k in set(got["run"]) - set(want["run"])}
    assert added in ({}, NEW_RUN_FIELDS), added
    got["run"] = {k: v for k, v in got["run"].items() if k not in added}
    assert got == want

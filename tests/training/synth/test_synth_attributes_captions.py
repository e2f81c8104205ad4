"""Attribute sampling (distinct identities) and captions that name colour, garment and action."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np

from training.synth import META_FILE
from training.synth.attributes import ACTIONS, COLOR_NAMES, TrackletAttrs, primary_key, sample_identities, sample_person
from training.synth.captions import ACTION_PHRASES, COLOR_WORDS, LOWER_WORDS, UPPER_WORDS, make_caption


def _mentions(caption: str, words) -> bool:
    return any(w in caption.lower() for w in words)


def _check_caption(caption: str, look: dict, action: str) -> None:
    text = caption.lower()
    up = [f"{c} {g}" for c in COLOR_WORDS.get(look["upper_color"], (look["upper_color"],))
          for g in UPPER_WORDS[look["upper_type"]]]
    low = [f"{c} {g}" for c in COLOR_WORDS.get(look["lower_color"], (look["lower_color"],))
           for g in LOWER_WORDS[look["lower_type"]]]
    assert _mentions(text, up), (caption, look)
    assert _mentions(text, low), (caption, look)
    assert _mentions(text, ACTION_PHRASES[action]), (caption, action)
    others = [a for a in ACTIONS if a != action]
    assert not any(_mentions(text, ACTION_PHRASES[a]) for a in others)


def test_sampled_captions_name_colour_garment_and_action():
    rng = np.random.default_rng(0)
    captions, starts = set(), Counter()
    for i in range(400):
        person = sample_person(rng, i + 1)
        action = ACTIONS[i % len(ACTIONS)]
        direction = {"walking_left": -1, "walking_right": 1, "standing": 0, "cycling": 1}[action]
        track = TrackletAttrs(pid=i + 1, track_no=1, camera=1, action=action, n_frames=8, background="park",
                              role="train", direction=direction, seed=i)
        caption = make_caption(person, track, rng)
        look = {k: getattr(person, k) for k in ("upper_color", "upper_type", "lower_color", "lower_type")}
        _check_caption(caption, look, action)
        assert caption[0].isupper() and caption.endswith(".") and "  " not in caption
        if person.bag == "none":
            assert "backpack" not in caption and " bag" not in caption
        captions.add(caption)
        starts[" ".join(caption.split()[:2])] += 1
    assert len(captions) == 400  # varied wording
    assert len(starts) >= 10  # several templates and subjects


def test_dataset_captions_match_their_tracklet(tiny_sets):
    for fmt in ("tvmars", "cuhk-pedes"):
        root, _ = tiny_sets[fmt]
        meta = json.loads((root / META_FILE).read_text())
        for t in meta["tracklets"]:
            assert t["captions"]
            for caption in t["captions"]:
                _check_caption(caption, t["look"], t["action"])
    # The TV-MARS annotation files carry exactly the meta captions.
    root, _ = tiny_sets["tvmars"]
    meta = json.loads((root / META_FILE).read_text())
    by_track = {(t["person_id"], t["track_id"]): t["captions"] for t in meta["tracklets"]}
    for path in root.glob("*_info/*.json"):
        for entry in json.loads(path.read_text()):
            assert entry["captions"] == by_track[(entry["person_id"], entry["track_id"])]


def test_identities_are_distinct():
    people, actions, collisions = sample_identities(np.random.default_rng(7), 200, [4] * 200)
    keys = [primary_key(p, a) for p, a in zip(people, actions)]
    assert collisions == 0 and len(set(keys)) == 200
    assert len({k[:3] for k in keys}) == 200  # even the appearance triple is unique for 200 ids
    assert {p.upper_color for p in people} == set(COLOR_NAMES)
    assert Counter(p.gender for p in people)["female"] > 60
    assert all(p.lower_type != "skirt" for p in people if p.gender == "male")


def test_identity_keeps_its_look_across_cameras(tiny_sets):
    root, summary = tiny_sets["tvmars"]
    meta = json.loads((root / META_FILE).read_text())
    by_pid: dict[int, list] = {}
    for t in meta["tracklets"]:
        by_pid.setdefault(t["pid"], []).append(t)
    assert len(by_pid) == 8
    for tracks in by_pid.values():
        assert 3 <= len(tracks) <= 4
        assert len({t["camera"] for t in tracks}) >= 2
        assert len({json.dumps(t["look"], sort_keys=True) for t in tracks}) == 1
        assert all(4 <= t["n_frames"] == len(t["img_paths"]) <= 6 for t in tracks)
    assert summary.attribute_collisions == meta["attribute_collisions"] == 0

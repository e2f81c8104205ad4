"""Attribute vocabularies and per-identity / per-tracklet attribute sampling.

Every synthetic identity gets a fixed appearance (:class:`PersonAttrs`) and several tracklets
(:class:`TrackletAttrs`) seen by different cameras, each with its own action.

Distinctness policy (why identities rarely look alike):
    The *primary key* of an identity is ``(upper_color, upper_type, lower_color, action_set)`` where
    ``action_set`` is the sorted set of actions over its tracklets. With 11 colours x 6 upper types x 11
    colours = 726 appearance triples (times the possible action sets), :func:`sample_identities` draws
    each identity up to ``_MAX_TRIES`` times and keeps the first draw whose appearance triple is unused;
    once every triple is used (more than 726 ids) it takes the first draw with an unused primary key, else an
    unused *full* key (adding lower type, gender, bag and hat). The number of identities that still share
    a primary key with an earlier one is returned as ``collisions`` and written to ``synth_meta.json``;
    it is 0 for a few hundred ids.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Named garment colours (canonical caption word -> sRGB). Chosen so that the nearest palette entry of
#: any per-identity shade (+-10 per channel) under a mild camera cast is still the named colour.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (190, 30, 35),
    "blue": (35, 75, 185),
    "green": (40, 135, 60),
    "black": (28, 28, 32),
    "white": (232, 232, 228),
    "yellow": (235, 205, 45),
    "grey": (125, 125, 128),
    "purple": (115, 55, 150),
    "orange": (235, 125, 35),
    "pink": (235, 140, 180),
    "brown": (110, 70, 40),
}
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)

UPPER_TYPES: tuple[str, ...] = ("t-shirt", "shirt", "jacket", "coat", "hoodie", "sweater")
LOWER_TYPES: tuple[str, ...] = ("trousers", "jeans", "shorts", "skirt")
BAGS: tuple[str, ...] = ("none", "backpack", "bag")
HATS: tuple[str, ...] = ("none", "hat")
ACTIONS: tuple[str, ...] = ("walking_left", "walking_right", "standing", "cycling")
GENDERS: tuple[str, ...] = ("male", "female")
HAIR_COLORS: dict[str, tuple[int, int, int]] = {"black": (25, 20, 18), "brown": (90, 55, 30), "blonde": (205, 170, 95)}
SKIN_TONES: tuple[tuple[int, int, int], ...] = ((236, 200, 170), (215, 170, 135), (180, 130, 95), (120, 80, 55))
SHOE_COLORS: tuple[str, ...] = ("black", "white", "brown", "grey")
BIKE_COLORS: tuple[str, ...] = ("black", "red", "blue", "grey", "green", "white")

_MAX_TRIES = 64
_SHADE_JITTER = 10  # max per-channel deviation of an identity's garment shade from the palette colour


def nearest_color(rgb) -> str:
    """Return the palette name whose RGB is closest (Euclidean) to ``rgb``.

    Args:
        rgb: three numbers in 0..255.

    Returns:
        A key of :data:`COLORS`.
    """
    v = np.asarray(rgb, dtype=np.float64).reshape(3)
    names = list(COLORS)
    d = [float(np.sum((v - np.asarray(COLORS[n], dtype=np.float64)) ** 2)) for n in names]
    return names[int(np.argmin(d))]


@dataclass(frozen=True)
class PersonAttrs:
    """Fixed appearance of one synthetic identity (shared by all its tracklets)."""

    pid: int
    gender: str
    hair_length: str
    hair_color: str
    skin: tuple[int, int, int]
    upper_type: str
    upper_color: str
    upper_rgb: tuple[int, int, int]
    inner_color: str  # shirt visible under an open jacket/coat
    lower_type: str
    lower_color: str
    lower_rgb: tuple[int, int, int]
    shoe_color: str
    bag: str
    bag_color: str
    hat: str
    hat_color: str
    build: float  # body width factor (~0.9..1.1)
    height: float  # body height factor (~0.93..1.0)
    cyclist: bool

    def to_json(self) -> dict:
        """Return a JSON-serialisable dict (tuples become lists)."""
        d = asdict(self)
        for k in ("skin", "upper_rgb", "lower_rgb"):
            d[k] = list(d[k])
        return d


@dataclass(frozen=True)
class TrackletAttrs:
    """One tracklet: an identity seen by one camera doing one action."""

    pid: int
    track_no: int  # 1-based, unique within the pid (MARS ``T0001``)
    camera: int  # 1-based camera id (MARS ``C1``..``C6``)
    action: str
    n_frames: int
    background: str  # scene name of the camera
    role: str  # "train" | "query" | "gallery" | "val" | "test" | "distractor" | "junk"
    direction: int  # -1 moving/facing left, +1 right, 0 facing the camera (standing)
    seed: int  # per-tracklet render seed

    def to_json(self) -> dict:
        """Return a JSON-serialisable dict (direction as "left" / "none" / "right")."""
        d = asdict(self)
        d["direction"] = {-1: "left", 0: "none", 1: "right"}[self.direction]
        return d


def action_direction(action: str, rng: np.random.Generator) -> int:
    """Direction implied by ``action``; cycling draws left or right from ``rng``."""
    if action == "walking_left":
        return -1
    if action == "walking_right":
        return 1
    if action == "cycling":
        return -1 if rng.random() < 0.5 else 1
    return 0


def _shade(rng: np.random.Generator, name: str) -> tuple[int, int, int]:
    """Per-identity shade of a palette colour that is still nearest to that colour."""
    base = np.asarray(COLORS[name], dtype=np.int64)
    for _ in range(_MAX_TRIES):
        rgb = np.clip(base + rng.integers(-_SHADE_JITTER, _SHADE_JITTER + 1, size=3), 0, 255)
        if nearest_color(rgb) == name:
            return tuple(int(c) for c in rgb)
    return tuple(int(c) for c in base)


def _pick(rng: np.random.Generator, seq, p=None):
    return seq[int(rng.choice(len(seq), p=p))]


def sample_person(rng: np.random.Generator, pid: int) -> PersonAttrs:
    """Draw one identity's appearance.

    Args:
        rng: random generator (consumed).
        pid: 1-based identity number.

    Returns:
        The sampled :class:`PersonAttrs`.
    """
    gender = _pick(rng, GENDERS)
    female = gender == "female"
    long_hair = rng.random() < (0.85 if female else 0.05)
    hair_length = "long" if long_hair else "short"
    upper_type = _pick(rng, UPPER_TYPES)
    upper_color = _pick(rng, COLOR_NAMES)
    lower_types = LOWER_TYPES if female else LOWER_TYPES[:3]
    lower_p = [0.3, 0.25, 0.2, 0.25] if female else [0.4, 0.35, 0.25]
    lower_type = _pick(rng, lower_types, lower_p)
    lower_color = _pick(rng, COLOR_NAMES)
    inner = "black" if upper_color in ("white", "yellow", "pink") else "white"
    bag = _pick(rng, BAGS, [0.5, 0.3, 0.2])
    hat = _pick(rng, HATS, [0.8, 0.2])
    return PersonAttrs(
        pid=pid,
        gender=gender,
        hair_length=hair_length,
        hair_color=_pick(rng, tuple(HAIR_COLORS), [0.55, 0.3, 0.15]),
        skin=_pick(rng, SKIN_TONES),
        upper_type=upper_type,
        upper_color=upper_color,
        upper_rgb=_shade(rng, upper_color),
        inner_color=inner,
        lower_type=lower_type,
        lower_color=lower_color,
        lower_rgb=_shade(rng, lower_color),
        shoe_color=_pick(rng, SHOE_COLORS),
        bag=bag,
        bag_color=_pick(rng, ("black", "brown", "grey", "blue", "red")),
        hat=hat,
        hat_color=_pick(rng, ("black", "white", "blue", "red", "grey")),
        build=float(round(rng.uniform(0.9, 1.1), 3)),
        height=float(round(rng.uniform(0.93, 1.0), 3)),
        cyclist=bool(rng.random() < 0.2),
    )


def sample_actions(rng: np.random.Generator, person: PersonAttrs, n: int) -> list[str]:
    """Draw the action of each of ``n`` tracklets of ``person`` (cyclists mostly cycle)."""
    if person.cyclist:
        return [_pick(rng, ACTIONS, [0.1, 0.1, 0.0, 0.8]) for _ in range(n)]
    return [_pick(rng, ACTIONS, [0.4, 0.4, 0.2, 0.0]) for _ in range(n)]


def primary_key(person: PersonAttrs, actions) -> tuple:
    """Key that should be unique per identity: (upper colour, upper type, lower colour, action set)."""
    return (person.upper_color, person.upper_type, person.lower_color, tuple(sorted(set(actions))))


def _full_key(person: PersonAttrs, actions) -> tuple:
    return primary_key(person, actions) + (person.lower_type, person.gender, person.bag, person.hat)


def sample_identities(rng: np.random.Generator, n_ids: int, tracklet_counts: list[int]):
    """Sample ``n_ids`` identities and their per-tracklet actions, avoiding look-alikes.

    Args:
        rng: random generator (consumed).
        n_ids: number of identities; pids are ``1..n_ids``.
        tracklet_counts: number of tracklets of each identity (``len == n_ids``).

    Returns:
        ``(people, actions, collisions)``: the :class:`PersonAttrs` list, a list of action lists and the
        number of identities whose primary key repeats an earlier identity's.
    """
    people, actions = [], []
    used_triples, used_primary, used_full = set(), set(), set()
    n_triples = len(COLOR_NAMES) ** 2 * len(UPPER_TYPES)
    collisions = 0
    for i in range(n_ids):
        best, best_score = None, 4
        for _ in range(_MAX_TRIES):
            person = sample_person(rng, i + 1)
            acts = sample_actions(rng, person, tracklet_counts[i])
            key = primary_key(person, acts)
            # 0: new appearance triple, 1: new primary key, 2: new full key, 3: exact repeat.
            score = 0 if key[:3] not in used_triples else 1 if key not in used_primary else (
                2 if _full_key(person, acts) not in used_full else 3)
            if score < best_score:
                best, best_score = (person, acts), score
            if best_score == 0 or (best_score == 1 and len(used_triples) >= n_triples):
                break
        person, acts = best
        key = primary_key(person, acts)
        collisions += key in used_primary
        used_triples.add(key[:3])
        used_primary.add(key)
        used_full.add(_full_key(person, acts))
        people.append(person)
        actions.append(acts)
    return people, actions, collisions

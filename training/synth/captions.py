"""Captions generated from attributes with varied templates, synonyms and optional mentions.

Every caption names the upper garment with its colour, the lower garment with its colour and the
tracklet's action, so retrieval needs words *and* pixels (colour, garment shape, motion over time).
Bag, hat, hair, shoes and the scene are optional mentions.
"""
from __future__ import annotations

import re

import numpy as np

from .attributes import PersonAttrs, TrackletAttrs
from .scenes import SCENES

SUBJECTS = {
    "male": ("a man", "a young man", "a guy", "a male pedestrian", "a gentleman"),
    "female": ("a woman", "a young woman", "a lady", "a female pedestrian", "a girl"),
}
PRONOUNS = {"male": ("he", "his"), "female": ("she", "her")}
COLOR_WORDS = {"grey": ("grey", "gray")}
UPPER_WORDS = {
    "t-shirt": ("t-shirt", "short-sleeved t-shirt", "tee"),
    "shirt": ("shirt", "long-sleeved shirt", "button-up shirt"),
    "jacket": ("jacket", "open jacket", "zip-up jacket"),
    "coat": ("coat", "long coat", "overcoat"),
    "hoodie": ("hoodie", "hooded sweatshirt"),
    "sweater": ("sweater", "jumper", "knitted sweater"),
}
LOWER_WORDS = {
    "trousers": ("trousers", "pants", "long trousers"),
    "jeans": ("jeans", "denim jeans"),
    "shorts": ("shorts", "short pants"),
    "skirt": ("skirt", "knee-length skirt"),
}
ACTION_PHRASES = {
    "walking_left": ("walking to the left", "walking towards the left", "walking left", "heading left on foot"),
    "walking_right": ("walking to the right", "walking towards the right", "walking right", "heading right on foot"),
    "standing": ("standing still", "standing in place", "standing and waiting", "standing without moving"),
    "cycling": ("riding a bicycle", "riding a bike", "cycling", "pedalling a bicycle"),
}
#: Words (any one of which) a caption uses for each attribute value; tests and demos use it.
ATTRIBUTE_WORDS = {**UPPER_WORDS, **LOWER_WORDS, **ACTION_PHRASES}

_TEMPLATES = (
    "{subj} in {upper} and {lower} {action}{extras}.",
    "{subj} wearing {upper}, {lower}{extras_comma}, {action}.",
    "{Action}, {subj} wears {upper} with {lower}{extras}.",
    "this {noun} is {action}. {Pron} is dressed in {upper} and {lower}{extras}.",
    "the video shows {subj}{hair} {action}, dressed in {upper} and {lower}{extras}.",
    "{subj}{hair} who is {action} has on {upper} and {lower}{extras}.",
)


def _choice(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def color_word(rng: np.random.Generator, color: str) -> str:
    """A caption word for ``color`` (``grey`` is sometimes spelled ``gray``)."""
    return _choice(rng, COLOR_WORDS.get(color, (color,)))


def _garment(rng: np.random.Generator, color: str, words) -> str:
    noun = _choice(rng, words)
    phrase = f"{color_word(rng, color)} {noun}"
    plural = noun.endswith(("trousers", "pants", "jeans", "shorts"))
    return phrase if plural else _article(phrase)


def _action(rng: np.random.Generator, track: TrackletAttrs) -> str:
    phrase = _choice(rng, ACTION_PHRASES[track.action])
    if track.action == "cycling" and rng.random() < 0.5:
        phrase += " to the left" if track.direction < 0 else " to the right"
    return phrase


def _extras(rng: np.random.Generator, person: PersonAttrs, track: TrackletAttrs) -> list[str]:
    out = []
    if person.bag == "backpack" and rng.random() < 0.8:
        out.append(_choice(rng, ("carrying a backpack", f"with a {person.bag_color} backpack", "wearing a backpack")))
    elif person.bag == "bag" and rng.random() < 0.8:
        out.append(_choice(rng, ("carrying a shoulder bag", f"with a {person.bag_color} bag over the shoulder",
                                 "carrying a bag")))
    if person.hat == "hat" and rng.random() < 0.7:
        out.append(_choice(rng, (f"wearing a {color_word(rng, person.hat_color)} cap", "wearing a hat")))
    if rng.random() < 0.25:
        out.append(f"with {color_word(rng, person.shoe_color)} shoes")
    if rng.random() < 0.2:
        out.append(SCENES[track.background][4])
    return out


def make_caption(person: PersonAttrs, track: TrackletAttrs, rng: np.random.Generator) -> str:
    """Write one caption for ``track`` of ``person``.

    Args:
        person: the identity's appearance.
        track: the tracklet (its action and scene).
        rng: random generator (consumed) choosing the template, synonyms and optional mentions.

    Returns:
        A one- or two-sentence caption, first letter capitalised.
    """
    subj = _choice(rng, SUBJECTS[person.gender])
    pron = PRONOUNS[person.gender][0]
    upper = _garment(rng, person.upper_color, UPPER_WORDS[person.upper_type])
    lower = _garment(rng, person.lower_color, LOWER_WORDS[person.lower_type])
    action = _action(rng, track)
    extras = _extras(rng, person, track)
    hair = ""
    if rng.random() < 0.4:
        hair = f" with {person.hair_length} {person.hair_color} hair"
    template = _choice(rng, _TEMPLATES)
    text = template.format(
        subj=subj, noun=subj.split(" ", 1)[1], Pron=pron.capitalize(), upper=upper, lower=lower, action=action,
        Action=action[0].upper() + action[1:], hair=hair,
        extras=(", " + ", ".join(extras)) if extras else "",
        extras_comma=(", " + ", ".join(extras)) if extras else "",
    )
    text = re.sub(r"\s+", " ", text).strip()
    return text[0].upper() + text[1:]


def tokenize_words(caption: str) -> list[str]:
    """CUHK-PEDES style ``processed_tokens``: lower-cased words, punctuation dropped."""
    return re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", caption.lower())

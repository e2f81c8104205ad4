"""Throughput benchmark of the tokenizer on short person descriptions (one thread, one core).

Run: ``python -c "from tvreid_sdk.text.bench import benchmark_tokenizer as b; print(b())"``.
"""
from __future__ import annotations

import random
import time

from ..config import TokenizerCfg
from .tokenizer import Tokenizer

_GENDERS = ("man", "woman", "boy", "girl", "person", "young man", "elderly woman", "pedestrian")
_COLORS = ("red", "black", "white", "blue", "dark green", "grey", "light brown", "yellow", "pink", "navy blue")
_TOPS = ("t-shirt", "jacket", "coat", "hoodie", "shirt", "sweater", "down jacket", "vest", "blouse", "suit")
_BOTTOMS = ("jeans", "trousers", "shorts", "skirt", "sweatpants", "leggings", "dress pants")
_SHOES = ("sneakers", "boots", "sandals", "leather shoes", "slippers", "running shoes")
_ITEMS = ("a backpack", "a black bag", "an umbrella", "a phone", "a bottle of water", "nothing", "a paper cup")
_ACTIONS = ("is walking to the left", "walks towards the camera", "is riding a bike", "stands still",
            "turns around and walks away", "is talking on the phone", "walks slowly past the shop")
_TEMPLATES = (
    "A {g} in a {c1} {top} and {c2} {bottom} {act}.",
    "The {g} wears a {c1} {top}, {c2} {bottom} and {c3} {shoes}, carrying {item}.",
    "{g} with short hair, {c1} {top}, {c2} {bottom}; {act}",
    "This {g} has a {c1} {top} and {c3} {shoes} and {act}, holding {item}.",
)


def make_captions(n: int, seed: int = 0) -> list[str]:
    """``n`` varied, deterministic short captions (10-25 words) built from attribute templates."""
    rng = random.Random(seed)
    captions = []
    for _ in range(n):
        captions.append(rng.choice(_TEMPLATES).format(
            g=rng.choice(_GENDERS), c1=rng.choice(_COLORS), c2=rng.choice(_COLORS), c3=rng.choice(_COLORS),
            top=rng.choice(_TOPS), bottom=rng.choice(_BOTTOMS), shoes=rng.choice(_SHOES),
            item=rng.choice(_ITEMS), act=rng.choice(_ACTIONS),
        ))
    return captions


def benchmark_tokenizer(n: int = 20000, batch_size: int = 64, seed: int = 0, repeat: int = 3) -> dict[str, float]:
    """Measures captions/s of ``Tokenizer.__call__`` with a fresh tokenizer, cold and then warm cache.

    Args:
        n: captions per pass.
        batch_size: captions per call (1 measures the per-query path).
        seed: caption generator seed.
        repeat: warm passes; the fastest one is reported (the others absorb noise from other processes).

    Returns:
        ``{"captions", "batch_size", "cold_captions_per_s", "warm_captions_per_s", "warm_us_per_caption",
        "load_s"}``: the cold pass starts with an empty word cache, warm passes repeat the same captions.
    """
    captions = make_captions(n, seed)
    start = time.perf_counter()
    tokenizer = Tokenizer(TokenizerCfg())
    load_s = time.perf_counter() - start
    seconds = []
    for _ in range(1 + max(1, repeat)):  # cold, then warm
        start = time.perf_counter()
        for i in range(0, n, batch_size):
            tokenizer(captions[i : i + batch_size])
        seconds.append(time.perf_counter() - start)
    warm = min(seconds[1:])
    return {
        "captions": float(n),
        "batch_size": float(batch_size),
        "cold_captions_per_s": n / seconds[0],
        "warm_captions_per_s": n / warm,
        "warm_us_per_caption": 1e6 * warm / n,
        "load_s": load_s,
    }

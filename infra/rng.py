"""Per-item randomness: a resumed run draws the same numbers for the same item, whatever ran before."""

from __future__ import annotations

import hashlib
import random


def item_rng(seed: int, key: str) -> random.Random:
    """A random generator that depends only on the run's seed and the item's key."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def item_seed(seed: int, key: str) -> int:
    """A sampler seed (0 to 2**31 - 1, which every server takes) that depends only on the run's seed and `key`."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1

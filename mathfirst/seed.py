"""One way to derive a seed from a run's seed and the tags of what it is for."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *tags: object) -> int:
    """A 31-bit seed that differs for every (seed, tags) and is the same on every machine."""
    digest = hashlib.sha256("/".join(map(str, (seed, *tags))).encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1

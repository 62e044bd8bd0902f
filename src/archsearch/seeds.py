"""The two ways archsearch derives a seed, so that randomness survives a resume and every rank agrees.

`step_seed`: a cheap integer mix of (seed, counter, salt) for per-step draws (Python and torch
generators accept any integer). `hashed_seed`: a stable 63-bit hash of named parts, for seeds
that must not collide across runs (Python's hash() is salted per process, so it cannot be used).
"""
from __future__ import annotations

import hashlib


def step_seed(seed: int, step: int, salt: int = 0) -> int:
    return seed * 1_000_003 + step * 7 + salt


def hashed_seed(*parts) -> int:
    digest = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1

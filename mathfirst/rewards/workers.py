"""Worker processes for verifiers that may run long (math-verify's sympy, reasoning-gym's scorers). A batch
gets a deadline; whatever is unfinished then scores 0 and the pool is replaced (its stuck processes killed),
so one batch of pathological answers never holds the trainer past it, nor leaves the next batch without
workers."""

from __future__ import annotations

import atexit
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from functools import cache
from multiprocessing.pool import Pool

TIMEOUT_S = 5  # math-verify's own parse and compare timeouts, per item
WORKERS = min(4, os.cpu_count() or 1)


@cache
def pool() -> Pool:
    workers = multiprocessing.get_context("fork").Pool(WORKERS)
    atexit.register(workers.terminate)  # before interpreter shutdown, when Pool.__del__ can no longer
    return workers


def deadline_s(items: int) -> float:
    """The most a batch of `items` may take: each item its timeout, spread over the workers, plus slack."""
    return 3 * TIMEOUT_S + TIMEOUT_S * math.ceil(items / WORKERS)


def run_batch(fn: Callable, args: list[tuple]) -> list:
    """fn(*a) for every `a` in the worker pool; each entry is its result, or the exception it raised, or a
    TimeoutError when the batch's deadline came first."""
    deadline = time.monotonic() + deadline_s(len(args))
    handles = [pool().apply_async(fn, a) for a in args]
    out, late = [], False
    for handle in handles:
        try:
            out.append(handle.get(timeout=max(0.0, deadline - time.monotonic())))
        except multiprocessing.TimeoutError:
            out.append(TimeoutError(f"unfinished at the batch's deadline ({deadline_s(len(args)):.0f} s)"))
            late = True
        except Exception as e:  # noqa: BLE001 - the caller scores it 0
            out.append(e)
    if late:
        replace_pool()
    return out


def replace_pool() -> None:
    """Kill the pool's processes (a stuck one included) and start afresh on the next call."""
    pool().terminate()
    pool.cache_clear()

"""One process per run folder: a second `mathfirst run --resume` on a folder that a live run is writing is
refused, instead of two processes interleaving its metrics and checkpoints."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mathfirst.config import ConfigError

LOCK_FILE = "run.lock"  # holds the pid of the process running the folder, for the message


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder `out` while the block runs. The operating system drops it when
    the process ends, however it ends, so a killed run leaves nothing to clean before --resume."""
    with open(out / LOCK_FILE, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise ConfigError(
                f"{out} is in use by {holder}, which is running it; wait for it to end or stop it, then --resume"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

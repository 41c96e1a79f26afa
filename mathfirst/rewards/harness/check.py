"""The trusted check's bound (the check itself is trusted.py). Each check runs in a check process, started here
with wire.py's and trusted.py's text, and the trainer waits for its verdict until a deadline, never past it: a
check that hangs, in Python or in C, is killed with its process group (which closes its ends of the program's
pipes, so the program reads EOF and exits), and the next check gets a fresh process. Idle check processes are
kept for later checks; each ends when the trainer exits, or within a second of the trainer's death."""

from __future__ import annotations

import atexit
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from mathfirst.rewards.harness.wire import error, receive, send

HERE = Path(__file__).parent
CHECK_SIDE = (HERE / "wire.py").read_text() + "\n" + (HERE / "trusted.py").read_text()
DEADLINE_S = 15.0  # a check's bound: the program's default wall clock (10 s) and 5 s for the test's own work


class CheckProcess:
    """A process that runs checks one at a time (trusted.serve_checks), told what to check over a Unix socket."""

    def __init__(self):
        self.channel, theirs = socket.socketpair()
        command = [sys.executable, "-I", "-c", f"{CHECK_SIDE}\nserve_checks({theirs.fileno()})\n"]
        quiet = subprocess.DEVNULL  # what a test prints goes nowhere
        self.proc = subprocess.Popen(
            command, pass_fds=(theirs.fileno(),), stdin=quiet, stdout=quiet, stderr=quiet, start_new_session=True
        )
        theirs.close()

    def check(self, test: str, entry_point: str, requests: int, replies: int, deadline_s: float) -> dict:
        """The verdict on `test` against the program at the other end of `requests` and `replies`."""
        socket.send_fds(self.channel, [b"c"], [requests, replies])
        send(self.channel.fileno(), {"test": test, "entry_point": entry_point})
        if not select.select([self.channel], [], [], deadline_s)[0]:
            raise TimeoutError(f"the check ran past its deadline ({deadline_s:g} s)")
        try:
            return receive(self.channel.fileno())
        except EOFError:
            raise RuntimeError("the check's process ended during the check") from None

    def close(self) -> None:
        """Kill the process and whatever its test started."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.channel.close()


_idle: list[CheckProcess] = []
_lock = threading.Lock()


def _take() -> CheckProcess:
    """An idle check process that is still alive, or a new one."""
    with _lock:
        while _idle:
            process = _idle.pop()
            if process.proc.poll() is None:
                return process
            process.close()
    return CheckProcess()


@atexit.register
def _close_idle() -> None:
    with _lock:
        while _idle:
            _idle.pop().close()


def run_test(test: str, entry_point: str, requests: int, replies: int, deadline_s: float | None = None) -> None:
    """Run `test`'s `check(entry_point)` against the program in a check process; returns only when the test
    passed, else raises what ended it, or TimeoutError at the deadline (`DEADLINE_S` unless given)."""
    process = _take()
    try:
        verdict = process.check(test, entry_point, requests, replies, deadline_s or DEADLINE_S)
    except BaseException:
        process.close()
        raise
    with _lock:
        _idle.append(process)
    if "error" in verdict:
        raise error(*verdict["error"])

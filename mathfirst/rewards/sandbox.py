"""Isolated execution of untrusted Python programs.

Each program runs in its own process group inside new user, PID, network and mount namespaces
(`unshare` from util-linux): the whole file system is remounted read-only except a private temp dir,
there is no network, and when the program exits every process it started dies with its PID namespace.
On top: rlimits on CPU time, address space, processes, file size and open files; a wall-clock kill;
output capped (written to size-limited files, never held in memory whole); a scrubbed environment.
Where namespaces are unavailable it falls back to rlimits alone, with a loud warning.
"""

from __future__ import annotations

import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from functools import cache

OUTPUT_CAP = 64 * 1024  # bytes of stdout / stderr returned to the caller

# Runs first inside the namespaces (no extra processes: mounts through libc): make the private dir its own
# mount, remount every other mount read-only, enter the dir, then run the program in this interpreter,
# which is PID 1 of the new PID namespace, so its exit tears the namespace and every leftover down.
JAIL = r"""
import ctypes, os, runpy, sys
libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
def mount(source, target, flags):
    if libc.mount(source.encode(), target.encode(), None, flags, None) != 0:
        raise OSError(ctypes.get_errno(), "mount " + target)
work = sys.argv[1]
mount(work, work, MS_BIND)
points = {line.split()[1].replace("\\040", " ") for line in open("/proc/self/mounts")}
for point in sorted(points - {work}, reverse=True):
    try:
        mount("none", point, MS_REMOUNT | MS_BIND | MS_RDONLY)
    except OSError:
        pass
os.chdir(work)
del sys.argv[:2]
del ctypes, libc, mount, points, work
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@dataclass
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    processes: int = 32
    file_mb: int = 16
    open_files: int = 64


@dataclass
class Result:
    returncode: int | None  # None when killed at the wall-clock limit
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    isolated: bool  # namespaces were used (False: rlimits only)


def _probe(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=10, preexec_fn=_drop_privileges).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@cache
def namespaces_available() -> bool:
    """Can we create user, PID, network and mount namespaces and remount read-only here?"""
    if not shutil.which("unshare"):
        return False
    probe = tempfile.mkdtemp(prefix="mathfirst-probe-")
    try:
        os.chmod(probe, 0o755)
        program = os.path.join(probe, "probe.py")
        with open(program, "w") as f:
            f.write("pass\n")
        os.chmod(program, 0o644)
        return _probe([*_unshare_cmd(), sandbox_python(), "-I", "-B", "-c", JAIL, probe, program])
    finally:
        shutil.rmtree(probe, ignore_errors=True)


@cache
def sandbox_python() -> str:
    """A Python interpreter the sandbox user may run (ours may live in a private home), stdlib only."""
    candidates = [os.path.realpath(sys.executable), "/usr/bin/python3", "/usr/local/bin/python3"]
    for python in dict.fromkeys(candidates):
        if os.path.isfile(python) and _probe([python, "-I", "-c", "pass"]):
            return python
    raise RuntimeError(f"sandbox: no Python interpreter runnable by the sandbox user among {candidates}")


def _unshare_cmd() -> list[str]:
    return ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--net", "--mount",
            "--mount-proc"]  # fmt: skip


def _sandbox_user() -> tuple[int, int] | None:
    """Run as `nobody` when we are root, so that the process limit means something."""
    if os.getuid() != 0:
        return None
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return nobody.pw_uid, nobody.pw_gid


def _drop_privileges() -> None:
    user = _sandbox_user()
    if user is not None:
        os.setgroups([])
        os.setgid(user[1])
        os.setuid(user[0])


def _limit(limits: Limits):
    def apply() -> None:
        _drop_privileges()
        mb = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * mb, limits.file_mb * mb))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        running = _processes_of(os.getuid())
        resource.setrlimit(resource.RLIMIT_NPROC, (running + limits.processes, running + limits.processes))

    return apply


@cache
def _limit_tools() -> bool:
    return shutil.which("setpriv") is not None and shutil.which("prlimit") is not None


def _limit_prefix(limits: Limits) -> list[str]:
    """The same user switch and rlimits as `_limit`, done by util-linux's setpriv and prlimit in front of the
    command: without a preexec_fn, Popen can vfork instead of copying this (large) process, twice as fast."""
    mb = 1024 * 1024
    user = _sandbox_user()
    prefix = ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups"] if user else []
    nproc = _processes_of(user[0] if user else os.getuid()) + limits.processes
    return [
        *prefix,
        "prlimit",
        f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}",
        f"--as={limits.memory_mb * mb}",
        f"--fsize={limits.file_mb * mb}",
        f"--nofile={limits.open_files}",
        "--core=0",
        f"--nproc={nproc}",
        "--",
    ]


def _processes_of(uid: int) -> int:
    count = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                count += os.stat(f"/proc/{pid}").st_uid == uid
            except OSError:
                pass
    return count


def _read_capped(f) -> str:
    f.seek(0)
    data = f.read(OUTPUT_CAP + 1)
    text = data[:OUTPUT_CAP].decode("utf-8", errors="replace")
    return text + ("\n[output truncated]" if len(data) > OUTPUT_CAP else "")


def run_python(program: str, stdin: str = "", limits: Limits | None = None, pass_fds: tuple[int, ...] = ()) -> Result:
    """Run `program` with `python -I` in the sandbox; its files live in a private dir deleted afterwards."""
    limits = limits or Limits()
    isolated = namespaces_available()
    if not isolated:
        warnings.warn(
            "sandbox: user/PID/network/mount namespaces are unavailable here; untrusted code runs with rlimits "
            "only (no network or file-system isolation)",
            RuntimeWarning,
            stacklevel=2,
        )
    workdir = tempfile.mkdtemp(prefix="mathfirst-sbx-")
    user = _sandbox_user()
    try:
        if user is not None:
            os.chown(workdir, *user)
        path = os.path.join(workdir, "program.py")
        with open(path, "w", encoding="utf-8", errors="replace") as f:
            f.write(program)
        args = [path, *map(str, pass_fds)]
        if isolated:
            cmd = [*_unshare_cmd(), sandbox_python(), "-I", "-S", "-B", "-c", JAIL, workdir, *args]
        else:
            cmd = [sandbox_python(), "-I", "-S", "-B", *args]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as inp:
            inp.write(stdin.encode())
            inp.seek(0)
            t0 = time.perf_counter()
            fast = _limit_tools()
            proc = subprocess.Popen(
                _limit_prefix(limits) + cmd if fast else cmd, stdin=inp, stdout=out, stderr=err, cwd=workdir,
                env=env, start_new_session=True, preexec_fn=None if fast else _limit(limits), pass_fds=pass_fds,
                close_fds=True,
            )  # fmt: skip
            fired = threading.Event()  # a timer, not Popen.wait(timeout), which polls with sleeps of up to 50 ms
            timer = threading.Timer(limits.wall_s, lambda: (fired.set(), _kill_group(proc.pid)))
            timer.start()
            proc.wait()
            timer.cancel()
            timed_out = fired.is_set()
            _kill_group(proc.pid)
            _wait_gone(proc.pid)
            seconds = time.perf_counter() - t0
            return Result(
                None if timed_out else proc.returncode,
                _read_capped(out),
                _read_capped(err),
                timed_out,
                round(seconds, 4),
                isolated,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(pgid: int) -> None:
    """SIGKILL everything left in the program's process group (the PID namespace takes the rest)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(pgid: int, timeout_s: float = 5.0) -> None:
    """Return once no process of the group is left: a killed namespace is torn down asynchronously."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.005)

"""Isolated execution of untrusted Python programs.

Each program runs in its own process group inside new user, PID, network and mount namespaces
(`unshare` from util-linux): the whole file system is remounted read-only except a private temp dir,
there is no network, and when the program exits every process it started dies with its PID namespace.
On top: rlimits on CPU time, address space, processes, file size and open files; a wall-clock kill;
output capped (written to size-limited files, never held in memory whole); a scrubbed environment.
Where namespaces are unavailable it falls back to rlimits alone, with a loud warning.
"""

from __future__ import annotations

import json
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

# Runs first inside the namespaces, as PID 1 of the new PID namespace (its exit tears every leftover down).
# It builds a minimal root on a tmpfs: the interpreter, its standard library and shared libraries bound
# read-only from the host (argv[1] names them), a private /work and /tmp on one size-capped tmpfs (the total
# a program may write, files and memory alike), a minimal /dev, its own /proc; pivots into it and detaches
# the host's root; then forbids nested user namespaces, drops every capability for good, and runs the program.
JAIL = r"""
import ctypes, json, os, runpy, sys
libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 16384
SYS = {"x86_64": (155, 126), "aarch64": (41, 91)}[os.uname().machine]  # pivot_root, capset
def check(ok, what):
    if not ok:
        e = ctypes.get_errno()
        raise OSError(e, f"sandbox: {what}: {os.strerror(e)}")
def mount(source, target, fstype, flags, data=None):
    enc = lambda s: s.encode() if s is not None else None
    check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) == 0, f"mount {target}")
def locked(path):
    f = os.statvfs(path).f_flag
    return (f & (MS_NOSUID | MS_NODEV | MS_NOEXEC)) | (f & 1024) | (f & 2048) | (2097152 if f & 4096 else 0)
cfg = json.loads(sys.argv[1])
root = cfg["work"]
program = open(os.path.join(root, "program.py"), "rb").read()
mount("none", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=256,mode=755")
scratch = os.path.join(root, ".scratch")
os.mkdir(scratch)
mount("none", scratch, "tmpfs", MS_NOSUID | MS_NODEV, f"size={cfg['write_mb']}m,nr_inodes={cfg['files']},mode=755")
for d in ("work", "tmp", "shm"):
    os.mkdir(os.path.join(scratch, d))
os.chmod(os.path.join(scratch, "tmp"), 0o1777)
def bind(source, target, flags):
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        open(target, "a").close()
    mount(source, target, None, MS_BIND)
    mount(None, target, None, MS_REMOUNT | MS_BIND | flags | locked(source))
for path in cfg["binds"]:
    bind(path, root + path, MS_RDONLY | MS_NOSUID | MS_NODEV)
for link, to in cfg["links"].items():
    os.makedirs(os.path.dirname(root + link), exist_ok=True)
    os.symlink(to, root + link)
for d in ("work", "tmp"):
    bind(os.path.join(scratch, d), os.path.join(root, d), MS_NOSUID | MS_NODEV)
bind(os.path.join(scratch, "shm"), os.path.join(root, "dev", "shm"), MS_NOSUID | MS_NODEV)
for dev in ("null", "zero", "full", "random", "urandom"):
    bind("/dev/" + dev, os.path.join(root, "dev", dev), MS_NOSUID)
for name, to in {"fd": "self/fd", "stdin": "self/fd/0", "stdout": "self/fd/1", "stderr": "self/fd/2"}.items():
    os.symlink("/proc/" + to, os.path.join(root, "dev", name))
os.mkdir(os.path.join(root, "proc"))
mount("/proc", os.path.join(root, "proc"), None, MS_BIND | MS_REC)
check(libc.umount2(scratch.encode(), 2) == 0, "umount scratch")
os.rmdir(scratch)
with open(os.path.join(root, "work", "program.py"), "wb") as f:
    f.write(program)
os.chdir(root)
check(libc.syscall(SYS[0], b".", b".") == 0, "pivot_root")
check(libc.umount2(b".", 2) == 0, "detach the host root")
os.chdir("/")
mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
with open("/proc/sys/user/max_user_namespaces", "w") as f:
    f.write("0")
cap = 0
while libc.prctl(24, cap, 0, 0, 0) == 0:
    cap += 1
check(libc.prctl(28, 0x2F, 0, 0, 0) == 0, "securebits")
header, data = (ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()
check(libc.syscall(SYS[1], header, data) == 0, "capset")
check(libc.prctl(38, 1, 0, 0, 0) == 0, "no_new_privs")
os.chdir("/work")
sys.argv = ["/work/program.py", *sys.argv[2:]]
del ctypes, libc, cfg, program
runpy.run_path("/work/program.py", run_name="__main__")
"""


@dataclass
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024  # address space of each process
    processes: int = 32
    file_mb: int = 16  # each file, the captured stdout and stderr included
    open_files: int = 64
    write_mb: int = 32  # everything written to /work, /tmp and /dev/shm together (a tmpfs: memory, not disk)
    files: int = 2048  # files and directories there


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
    """Can we build the jail here: user, PID, network and mount namespaces, a tmpfs root, pivot_root?"""
    if not shutil.which("unshare"):
        return False
    probe = tempfile.mkdtemp(prefix="mathfirst-probe-")
    try:
        os.chmod(probe, 0o755)
        with open(os.path.join(probe, "program.py"), "w") as f:
            f.write("pass\n")
        os.chmod(os.path.join(probe, "program.py"), 0o644)
        return _probe([*_unshare_cmd(), *_jail_cmd(probe, Limits())])
    finally:
        shutil.rmtree(probe, ignore_errors=True)


@cache
def root_paths() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """What the jail's root holds of the host, read-only: the interpreter, its standard library and the
    shared-library directories (top-level symlinks such as /lib -> usr/lib are recreated, not followed)."""
    python = sandbox_python()
    binary = os.path.realpath(python)
    stdlib = subprocess.run(
        [python, "-I", "-S", "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
        capture_output=True, text=True, preexec_fn=_drop_privileges, check=True,
    ).stdout.strip()  # fmt: skip
    binds, links = [binary], {python: binary} if python != binary else {}
    for d in ("/lib", "/lib64", "/lib32", "/usr/lib", "/usr/lib64", "/usr/lib32"):
        if os.path.islink(d):
            links[d] = os.readlink(d)
        elif os.path.isdir(d):
            binds.append(d)
    if not any(stdlib == b or stdlib.startswith(b + "/") for b in binds):
        binds.append(stdlib)
    return tuple(binds), tuple(links.items())


def _jail_cmd(workdir: str, limits: Limits) -> list[str]:
    binds, links = root_paths()
    config = {"work": workdir, "write_mb": limits.write_mb, "files": limits.files, "binds": binds,
              "links": dict(links)}  # fmt: skip
    return [sandbox_python(), "-I", "-S", "-B", "-c", JAIL, json.dumps(config)]


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
    """Run `program` with `python -I` in the sandbox and wait for it (at most `limits.wall_s`)."""
    return start_python(program, stdin, limits, pass_fds).wait()


class Running:
    """A program started in the sandbox: `wait()` for its result, or `kill()` it first."""

    def __init__(self, program: str, stdin: str, limits: Limits, pass_fds: tuple[int, ...]):
        self.isolated = namespaces_available()
        if not self.isolated:
            warnings.warn(
                "sandbox: user/PID/network/mount namespaces are unavailable here; untrusted code runs with "
                "rlimits only (no network or file-system isolation)",
                RuntimeWarning,
                stacklevel=3,
            )
        self.workdir = tempfile.mkdtemp(prefix="mathfirst-sbx-")
        user = _sandbox_user()
        if user is not None:
            os.chown(self.workdir, *user)
        with open(os.path.join(self.workdir, "program.py"), "w", encoding="utf-8", errors="replace") as f:
            f.write(program)
        fds = [str(fd) for fd in pass_fds]
        if self.isolated:
            cmd = [*_unshare_cmd(), *_jail_cmd(self.workdir, limits), *fds]
            env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/work", "TMPDIR": "/tmp"}
        else:
            cmd = [sandbox_python(), "-I", "-S", "-B", os.path.join(self.workdir, "program.py"), *fds]
            env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": self.workdir, "TMPDIR": self.workdir}
        self.out, self.err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        with tempfile.TemporaryFile() as inp:
            inp.write(stdin.encode())
            inp.seek(0)
            self.t0 = time.perf_counter()
            fast = _limit_tools()
            self.proc = subprocess.Popen(
                _limit_prefix(limits) + cmd if fast else cmd, stdin=inp, stdout=self.out, stderr=self.err,
                cwd=self.workdir, env=env, start_new_session=True, preexec_fn=None if fast else _limit(limits),
                pass_fds=pass_fds, close_fds=True,
            )  # fmt: skip
        self.fired = threading.Event()  # a timer, not Popen.wait(timeout), which polls with sleeps of up to 50 ms
        self.timer = threading.Timer(limits.wall_s, lambda: (self.fired.set(), self.kill()))
        self.timer.start()

    def kill(self) -> None:
        """SIGKILL the program. In the jail that is the PID namespace's first process, whose death ends every
        other one in it; `unshare` then reaps it and exits (killing `unshare` too would leave the reaping to
        the host's init, which may take seconds)."""
        children = f"/proc/{self.proc.pid}/task/{self.proc.pid}/children"
        pids = []
        if self.isolated:
            try:
                with open(children) as f:
                    pids = [int(pid) for pid in f.read().split()]
            except OSError:
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not pids:
            _kill_group(self.proc.pid)

    def stop(self, grace_s: float) -> Result:
        """The result once the program ends by itself within `grace_s`, or is killed."""
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.wait()

    def wait(self) -> Result:
        try:
            self.proc.wait()
            self.timer.cancel()
            _kill_group(self.proc.pid)
            _wait_gone(self.proc.pid)
            timed_out = self.fired.is_set()
            return Result(
                None if timed_out else self.proc.returncode,
                _read_capped(self.out),
                _read_capped(self.err),
                timed_out,
                round(time.perf_counter() - self.t0, 4),
                self.isolated,
            )
        finally:
            self.out.close()
            self.err.close()
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_python(
    program: str, stdin: str = "", limits: Limits | None = None, pass_fds: tuple[int, ...] = ()
) -> Running:
    """Start `program` in the sandbox; its only channels to the caller are stdin, stdout, stderr and `pass_fds`."""
    return Running(program, stdin, limits or Limits(), pass_fds)


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

"""The second round of reward hacks and escapes, as a policy under RL would try them: forged verdicts, values
that equal anything, a visible host, writes past every per-file cap, nested namespaces, and verifier batches
built to hold the trainer. Each test here failed on the single-sandbox harness with a read-only host root."""

import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from mathfirst.rewards import code, compute_scores
from mathfirst.rewards.code import run_check
from mathfirst.rewards.harness import check
from mathfirst.rewards.math_answer import score_many
from mathfirst.rewards.sandbox import Limits, run_python
from mathfirst.rewards.workers import deadline_s
from tests.rewards.test_sandbox import _accept

FAST = Limits(wall_s=3, cpu_s=3)
ADD = (
    "add",
    "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert abs(candidate(0.5, 0.25) - 0.75) < 1e-9\n",
)

FORGERIES = {
    "the caller's frame": (
        "import os, sys\n"
        "f = sys._getframe(1)\n"
        "while f is not None:\n"
        "    for v in f.f_locals.values():\n"
        "        if isinstance(v, bytes) and len(v) == 32:\n"
        "            os.write(1, b'\\n' + v + b'\\n')\n"
        "            os._exit(0)\n"
        "    f = f.f_back\n"
    ),
    "a traceback's frames": (
        "import os\n"
        "try:\n    raise ValueError\nexcept ValueError as e:\n    f = e.__traceback__.tb_frame\n"
        "while f is not None:\n"
        "    for v in list(f.f_locals.values()):\n"
        "        if isinstance(v, bytes) and len(v) == 32:\n"
        "            os.write(1, b'\\n' + v + b'\\n')\n"
        "            os._exit(0)\n"
        "    f = f.f_back\n"
    ),
    "an always-equal object": (
        "class Yes:\n    def __eq__(self, other):\n        return True\n    __ne__ = lambda self, other: False\n"
        "    __sub__ = lambda self, other: 0\n"
        "def add(a, b):\n    return Yes()\n"
    ),
    "an int subclass that equals anything": (
        "class Int(int):\n    def __eq__(self, other):\n        return True\n    def __sub__(self, other):\n"
        "        return 0\n"
        "def add(a, b):\n    return Int(0)\n"
    ),
    "patched builtins": "import builtins\nbuiltins.abs = lambda x: 0\ndef add(a, b):\n    return 5\n",
}


@pytest.mark.parametrize("trick", FORGERIES, ids=list(FORGERIES))
def test_a_forged_verdict_scores_zero(trick):
    assert run_check(FORGERIES[trick] + ("def add(a, b):\n    return 0\n" if "def add" not in FORGERIES[trick]
                                         else ""), *ADD, FAST)["score"] == 0.0  # fmt: skip


def test_honest_values_still_pass_with_refs_and_exceptions():
    """Objects that cannot cross stay with the program as references: a class, its methods, iteration; the
    program's exceptions come back as Python's own."""
    program = (
        "class Node:\n    def __init__(self, v, nxt=None):\n        self.v, self.nxt = v, nxt\n"
        "    def __iter__(self):\n        node = self\n        while node:\n            yield node.v\n"
        "            node = node.nxt\n"
        "class Solution:\n    def total(self, head):\n        return sum(head)\n"
        "    def fail(self):\n        raise ValueError('no')\n"
        "def pair(x):\n    return (x, {x: [x, {1, 2}], 'b': b'\\x00'}, 2 ** 200, 1.5, None)\n"
    )
    test = (
        "def check(_):\n"
        "    head = Node(1, Node(2, Node(3)))\n"
        "    assert Solution().total(head) == 6 and list(head) == [1, 2, 3]\n"
        "    assert pair(3) == (3, {3: [3, {1, 2}], 'b': b'\\x00'}, 2 ** 200, 1.5, None)\n"
        "    try:\n        Solution().fail()\n        assert False\n    except ValueError as e:\n"
        "        assert str(e) == 'no'\n"
    )
    assert run_check(program, "__name__", test, FAST)["score"] == 1.0


def test_the_host_is_invisible(tmp_path):
    """Only the interpreter, its standard library and shared libraries; no project files, no run data, no host
    /tmp, no other process."""
    secret = tmp_path / "answers.jsonl"
    secret.write_text("the-held-out-answers")
    host_tmp = Path("/tmp") / f"mathfirst-host-{os.getpid()}.txt"
    host_tmp.write_text("host-tmp-secret")
    try:
        program = (
            "import os\n"
            f"for p in [{str(secret)!r}, {str(host_tmp)!r}, {str(Path.cwd() / 'pyproject.toml')!r}, '/etc/passwd']:\n"
            "    try:\n        print(open(p).read())\n    except OSError as e:\n        print('hidden', p)\n"
            "print('root', sorted(os.listdir('/')))\nprint('tmp', os.listdir('/tmp'))\n"
            "print('pids', sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
        )
        r = run_python(program, limits=FAST)
    finally:
        host_tmp.unlink()
    assert "the-held-out-answers" not in r.stdout and "host-tmp-secret" not in r.stdout
    assert "[project]" not in r.stdout and "root:" not in r.stdout and r.stdout.count("hidden") == 4, r.stdout
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines() if line.startswith(("root", "tmp", "pids")))
    assert set(eval(lines["root"])) <= {"bin", "dev", "lib", "lib32", "lib64", "proc", "tmp", "usr", "work"}
    assert eval(lines["tmp"]) == [] and len(eval(lines["pids"])) <= 2  # itself (and its reaper)


def test_a_host_unix_socket_cannot_be_reached():
    """A world-writable socket on the host (a system bus, say): a read-only mount would not stop connect()."""
    folder = Path(tempfile.mkdtemp(prefix="mathfirst-bus-"))
    os.chmod(folder, 0o777)
    path = folder / "bus.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    os.chmod(path, 0o777)
    server.listen(1)
    server.settimeout(4)
    accepted = []
    threading.Thread(target=lambda: accepted.append(_accept(server)), daemon=True).start()
    program = f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({str(path)!r})\nprint('connected')\n"
    try:
        r = run_python(program, limits=FAST)
    finally:
        server.close()
        shutil.rmtree(folder)
    assert "connected" not in r.stdout and r.returncode != 0
    assert accepted in ([], [None])


def test_many_capped_files_cannot_pass_the_total_cap():
    """Each file is under the per-file cap; together, in /work, /tmp and /dev/shm, they stop at write_mb."""
    program = (
        "import os\nwritten = 0\n"
        "for i in range(200):\n"
        "    for d in ('/work', '/tmp', '/dev/shm'):\n"
        "        try:\n"
        "            with open(f'{d}/f{i}', 'wb') as f:\n                f.write(b'x' * 2**20)\n"
        "            written += 1\n"
        "        except OSError as e:\n            print('stopped:', e.strerror, written, flush=True)\n"
        "            raise SystemExit\n"
        "print('wrote', written)\n"
    )
    r = run_python(program, limits=Limits(wall_s=10, cpu_s=10, write_mb=8))
    assert "stopped: No space left on device" in r.stdout, r.stdout + r.stderr
    assert int(r.stdout.split()[-1]) <= 8
    r = run_python("for i in range(100000):\n    open(f'/tmp/{i}', 'w').close()\n", limits=Limits(wall_s=10, files=500))
    assert "No space left on device" in r.stderr


def test_no_capabilities_no_mounts_no_nested_user_namespaces():
    program = (
        "import ctypes, subprocess, sys\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "print('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))\n"
        "print('unshare', libc.unshare(0x10000000))\n"  # CLONE_NEWUSER
        "print('caps', open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n"
        "child = subprocess.run([sys.executable, '-c', \"print(open('/proc/self/status').read()"
        ".split('CapEff:')[1].split()[0])\"], capture_output=True, text=True)\n"
        "print('child', child.stdout.strip())\n"
    )
    r = run_python(program, limits=FAST)
    assert "mount -1" in r.stdout and "unshare -1" in r.stdout, r.stdout + r.stderr
    assert "caps 0000000000000000" in r.stdout and "child 0000000000000000" in r.stdout


PATHOLOGICAL_MATH = [
    "9^{9^{9^{9}}}",
    "2^{2^{2^{2^{2^{2}}}}}",
    "(10^{10^{10}})!",
    "1000000!",
    "(9^{99})!!",
    "10^{1000000000}",
    "1+" * 5000 + "1",
    "(" * 3000 + "1" + ")" * 3000,
]
HOSTILE_PROGRAMS = [
    "while True:\n    pass\n",
    "import time\ntime.sleep(60)\n",
    "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "x = bytearray(8 * 1024 ** 3)\n",
    "import os\nos._exit(0)\n",
    FORGERIES["the caller's frame"],
    FORGERIES["an always-equal object"],
    "i = 0\nwhile True:\n    open(f'/tmp/{i}', 'wb').write(b'x' * 2**20)\n    i += 1\n",
]


def test_a_batch_of_hostile_programs_and_answers_returns_in_bound(monkeypatch):
    """64 hostile programs and 64 pathological math answers in one compute_scores call: each scores 0, the
    call returns within its stated bound, and the worker pool scores the next batch."""
    monkeypatch.setattr(code, "LIMITS", Limits(wall_s=2, cpu_s=2))
    spec = json.dumps({"entry_point": ADD[0], "test": ADD[1]})
    programs = [f"```python\n{HOSTILE_PROGRAMS[i % 8]}def add(a, b):\n    return 0\n```" for i in range(64)]
    items = [("humaneval", p, spec, {"ability": "code"}) for p in programs]
    items += [("math500", f"\\boxed{{{PATHOLOGICAL_MATH[i % 8]}}}", "3", None) for i in range(64)]
    t0 = time.perf_counter()
    scores = compute_scores(items, workers=4)
    seconds = time.perf_counter() - t0
    slow = 2 * 64 // 8  # the loop and the sleep run to the wall clock (the fork bomb and the writer may too)
    bound = deadline_s(64) + (4 * slow / 4) * (2 + 1)  # math's deadline + the code items over 4 threads
    assert [s["score"] for s in scores] == [0.0] * 128, [s.get("reason") for s in scores if s["score"]]
    assert seconds < bound, (seconds, bound)
    assert all(s["seconds"] < 1 for s in scores[64:]), "pathological answers score 0 before sympy runs"
    healthy = score_many([("\\boxed{\\frac{1}{2}}", "0.5"), ("\\boxed{3}", "4")])
    assert [h["score"] for h in healthy] == [1.0, 0.0]


# The program's side speaks the wire itself: it takes `send` and `receive` from the frame that runs it, says it
# holds `add` (and a module), and answers every call with the reply under test.
FORGED_WIRE = (
    "import os, sys\n"
    "frame = sys._getframe(1)\n"
    "send, receive = frame.f_globals['send'], frame.f_globals['receive']\n"
    "requests, replies = frame.f_locals['requests'], frame.f_locals['replies']\n"
    "names = {{'add': {{'ref': 0}}, 'math': {{'module': 'this'}}, 'hi': {{'module': '__hello__'}}}}\n"
    "send(replies, {{'globals': names}})\n"
    "while True:\n"
    "    try:\n        receive(requests)\n    except EOFError:\n        os._exit(0)\n"
    "    send(replies, {reply})\n"
)
FORGED_REPLIES = {
    "a module by name": "{'value': {'module': 'this'}}",
    "a module inside data": "{'value': [{'dict': [[{'module': '__hello__'}, 5]]}, {'module': 'this'}]}",
    "an exception that is not an Exception": "{'error': ['KeyboardInterrupt', 'stop the trainer']}",
    "SystemExit": "{'error': ['SystemExit', 0]}",
    "a dotted name": "{'error': ['os.system', 'echo hi']}",
    "a name that is not a string": "{'error': [{'module': 'this'}, ['x'] * 100000]}",
    "an unknown tag": "{'value': {'import': 'this'}}",
    "a reference for a value": "{'value': {'ref': 0}}",
}
PROBES = ("this", "__hello__")


@pytest.mark.parametrize("reply", FORGED_REPLIES, ids=list(FORGED_REPLIES))
def test_names_the_program_sends_are_never_acted_on(reply):
    """A forged wire names modules to import and exceptions to raise: each scores 0 within the program's limits,
    and no module it named is imported, here or in the check's process."""
    assert not any(name in sys.modules for name in PROBES)
    t0 = time.perf_counter()
    result = run_check(FORGED_WIRE.format(reply=FORGED_REPLIES[reply]), *ADD, FAST)
    assert result["score"] == 0.0 and time.perf_counter() - t0 < FAST.wall_s, result
    assert not any(name in sys.modules for name in PROBES)
    probe = "import sys\ndef check(_):\n    assert not any(m in sys.modules for m in ('this', '__hello__'))\n"
    assert run_check("", "__name__", probe, FAST)["score"] == 1.0, "the check's own process imported a probe"


def test_protocols_of_the_check_are_not_asked_of_the_program():
    """Library code looks up protocol names on values (`__array_interface__`, `__deepcopy__`); a program's object
    answers none of them, so what it returns for them is never acted on."""
    program = "class Liar:\n    def __getattr__(self, name):\n        return 7\ndef make():\n    return Liar()\n"
    test = (
        "def check(make):\n    x = make()\n    assert x.anything == 7\n"
        "    for name in ('__deepcopy__', '__array_interface__', '__float__'):\n"
        "        assert not hasattr(x, name), name\n"
    )
    assert run_check(program, "make", test, FAST)["score"] == 1.0


def test_modules_the_check_holds_reach_the_test_and_others_stay_with_the_program():
    """`math` from the program's globals is the check's own (a patched copy does not cross); `os` stays the
    program's, a reference."""
    program = "import math, os\nmath.sqrt = lambda x: 3\ndef root(x):\n    return math.sqrt(x)\n"
    test = (
        "def check(root):\n    assert math.sqrt(16) == 4 and root(16) == 3\n"
        "    assert not isinstance(os, type(math)) and os.getcwd() == '/work'\n"
    )
    assert run_check(program, "root", test, FAST)["score"] == 1.0


def test_a_check_that_hangs_is_cut_at_its_deadline(tmp_path, monkeypatch):
    """A trusted test stuck in C, holding the GIL: the trainer gets a 0 at the check's deadline, the check's
    process is gone, and the next check runs."""
    monkeypatch.setattr(check, "DEADLINE_S", 2.0)
    pid = tmp_path / "pid"
    test = (
        f"import os\ndef check(add):\n    open({str(pid)!r}, 'w').write(str(os.getpid()))\n"
        "    assert add(2, 3) == 5\n    sum(range(10 ** 15))\n"
    )
    t0 = time.perf_counter()
    result = run_check("def add(a, b):\n    return a + b\n", "add", test, FAST)
    assert result["score"] == 0.0 and "deadline" in result["reason"], result
    assert time.perf_counter() - t0 < 2.0 + 1.5
    assert int(pid.read_text()) != os.getpid() and not Path(f"/proc/{pid.read_text()}").exists()
    assert run_check("def add(a, b):\n    return a + b\n", *ADD, FAST)["score"] == 1.0

"""The sandbox against hostile programs: each scores as it should, the caller survives, nothing is left
running and nothing is written outside."""

import gzip
import json
import os
import socket
import threading
from pathlib import Path

import pytest

from mathfirst.rewards import compute_score, compute_scores, sandbox
from mathfirst.rewards.code import run_check, run_io
from mathfirst.rewards.sandbox import Limits, run_python

HUMANEVAL = Path(__file__).parents[2] / "mathfirst" / "benchmarks" / "humaneval" / "HumanEval.jsonl.gz"
FAST = Limits(wall_s=3, cpu_s=3)


def leftovers() -> list[str]:
    """Command lines of sandboxed processes still alive."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "mathfirst-sbx-" in cmd:
            found.append(cmd)
    return found


@pytest.fixture(autouse=True)
def nothing_left_behind():
    yield
    assert leftovers() == []


def test_namespaces_are_used_here():
    assert sandbox.namespaces_available(), "this machine supports user namespaces; the sandbox must use them"
    assert run_python("print(1)").isolated


def test_infinite_loop_is_killed_at_the_wall_clock():
    r = run_python("while True:\n    pass\n", limits=Limits(wall_s=1.5, cpu_s=60))
    assert r.timed_out and r.returncode is None and r.seconds < 5


def test_cpu_limit_stops_a_busy_program():
    r = run_python("while True:\n    pass\n", limits=Limits(wall_s=20, cpu_s=1))
    assert not r.timed_out and r.returncode != 0 and r.seconds < 10


def test_fork_bomb_is_contained():
    r = run_python(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", limits=FAST
    )
    assert r.returncode != 0 or r.timed_out


def test_memory_bomb_fails():
    r = run_python("x = bytearray(8 * 1024 ** 3)\nprint('allocated')", limits=FAST)
    assert r.returncode != 0 and "allocated" not in r.stdout and "MemoryError" in r.stderr


def test_no_network_even_to_localhost():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(5)
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(_accept(server)), daemon=True).start()
    r = run_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')")
    assert "connected" not in r.stdout and r.returncode != 0
    server.close()
    assert accepted in ([], [None])


def _accept(server):
    try:
        return server.accept()
    except OSError:
        return None


def test_writes_outside_the_private_dir_fail(tmp_path):
    home = Path.home() / "mathfirst-sbx-escape.txt"
    targets = [Path("/tmp/mathfirst-escape.txt"), home, Path.cwd() / "escape.txt", tmp_path / "escape.txt"]
    attempt = "try:\n    open({0!r}, 'w').write('x')\n    print('wrote', {0!r})\nexcept OSError as e:\n    print(e)"
    program = "\n".join(attempt.format(str(t)) for t in targets)
    r = run_python(program + "\nopen('mine.txt', 'w').write('ok')\nprint(open('mine.txt').read())")
    assert r.stdout.strip().endswith("ok")
    assert not any(t.exists() for t in targets)  # /tmp is the program's own: what it writes there stays there


def test_double_forked_daemon_dies_with_the_run():
    program = (
        "import os, time\n"
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(30)\n    os._exit(0)\n"
        "print('parent done')\n"
    )
    r = run_python(program, limits=FAST)
    assert "parent done" in r.stdout
    # the autouse fixture checks that no sandboxed process is alive


def test_killing_its_parent_or_group_leaves_the_caller_alive():
    for program in ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", "import os\nos.killpg(0, 9)"):
        r = run_python(program, limits=FAST)
        assert r.returncode != 0 or r.timed_out
    assert os.getpid() > 0  # still here


def test_parent_environment_is_not_visible(monkeypatch):
    monkeypatch.setenv("MATHFIRST_SECRET", "s3cret-value")
    program = (
        "import os\nprint(dict(os.environ))\n"
        "for p in ('/proc/1/environ', f'/proc/{os.getppid()}/environ'):\n"
        "    try:\n        print(open(p, 'rb').read())\n    except OSError as e:\n        print(e)\n"
    )
    r = run_python(program)
    assert "s3cret-value" not in r.stdout + r.stderr


def test_gigabytes_of_output_are_capped():
    r = run_python("while True:\n    print('x' * 10000)", limits=Limits(wall_s=3, cpu_s=3, file_mb=4))
    assert len(r.stdout) <= sandbox.OUTPUT_CAP + 100 and r.stdout.endswith("[output truncated]")


ADD = {
    "entry_point": "add",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(0, 0) == 0\n",
}
WRONG = "def add(a, b):\n    return a - b\n"


@pytest.mark.parametrize(
    "trick",
    [
        "import os\nos._exit(0)\n",
        "raise SystemExit(0)\n",
        "import atexit, os\natexit.register(lambda: os._exit(0))\n",
        "print('PASSED')\nprint('All tests passed')\n",
        "import sys\nsys.excepthook = lambda *a: None\n",
    ],
)
def test_exit_status_tricks_score_zero(trick):
    assert run_check(trick + WRONG, ADD["entry_point"], ADD["test"], FAST)["score"] == 0.0
    assert run_check(WRONG + trick, ADD["entry_point"], ADD["test"], FAST)["score"] == 0.0


def test_right_program_passes_and_routes_through_compute_score():
    good = "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```"
    result = compute_score("humaneval", good, json.dumps(ADD), {"ability": "code"})
    assert result["score"] == 1.0 and result["acc"] is True and result["isolated"]
    assert compute_score("humaneval", f"```python\n{WRONG}```", json.dumps(ADD), {"ability": "code"})["score"] == 0.0


def test_stdin_stdout_style():
    spec = {"inputs": ["2 3\n", "10 -4\n"], "outputs": ["5\n", "6\n"]}
    good = "a, b = map(int, input().split())\nprint(a + b)\n"
    assert run_io(good, spec["inputs"], spec["outputs"])["score"] == 1.0
    bad = run_io("print(5)\n", spec["inputs"], spec["outputs"])
    assert bad["score"] == 0.0 and bad["reason"].startswith("case 1")
    assert compute_score("lcb", f"```python\n{good}```", json.dumps(spec), {"ability": "code"})["score"] == 1.0


def humaneval_rows() -> list[dict]:
    with gzip.open(HUMANEVAL, "rt") as f:
        return [json.loads(line) for line in f]


def test_humaneval_canonical_solutions_pass_and_broken_copies_fail():
    rows = humaneval_rows()
    assert len(rows) == 164
    items = []
    for row in rows:
        spec = json.dumps({"entry_point": row["entry_point"], "test": row["test"]})
        items.append(("humaneval", row["prompt"] + row["canonical_solution"], spec, {"ability": "code"}))
        items.append(("humaneval", row["prompt"] + "    return None\n", spec, {"ability": "code"}))
    scores = compute_scores(items)
    passed = [s["score"] for s in scores[0::2]]
    broken = [s["score"] for s in scores[1::2]]
    failing = [rows[i]["task_id"] for i, p in enumerate(passed) if p != 1.0]
    assert failing == [], failing
    assert sum(broken) == 0, [rows[i]["task_id"] for i, b in enumerate(broken) if b]


def test_without_namespaces_it_warns_loudly(monkeypatch):
    monkeypatch.setattr(sandbox, "namespaces_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="namespaces are unavailable"):
        r = run_python("print('still runs')")
    assert r.stdout.strip() == "still runs" and not r.isolated

"""Recovery from a damaged or full disk: checkpoints are on the disk before they are renamed in; a damaged newest
checkpoint falls back to the previous one or stops with one line; a disk that fills while saving or logging
stops the run with one line and the last checkpoint whole, and --resume goes on once there is room. A full disk
is real: a small tmpfs, mounted in a mount namespace of the test's own."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mathfirst.config import TrainConfig
from mathfirst.train.checkpoint import CheckpointDamaged, damage
from mathfirst.train.metrics import read_metrics
from mathfirst.train.sft import encode_chats, train

ROOT = Path(__file__).parents[2]
SMOKE = ROOT / "configs" / "smoke.yaml"
# A tiny model, its tokenizer and an optimizer, for the scripts that run in a process of their own.
TINY = """
import torch
from mathfirst.config import ModelConfig
from mathfirst.model import build_tiny_model
from mathfirst.tokenizer import train_tokenizer
tok = train_tokenizer([f"Compute {a} + 1. {a + 1}" for a in range(10)], 320)
model = build_tiny_model(ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                                     intermediate_size=64), tok, 0)
optimizer = torch.optim.AdamW(model.parameters())
model(torch.tensor([[1, 2, 3]])).logits.sum().backward()
optimizer.step()  # the optimizer has state to save
"""
PAIRS = [(f"Compute {a} + 1.", f"Answer: \\boxed{{{a + 1}}}") for a in range(10)]


def tiny_training(stage: Path, steps: int, save_every: int) -> None:
    """SFT of a tiny model for `steps` into `stage`, resuming from stage/last when it is there."""
    from mathfirst.config import ModelConfig
    from mathfirst.model import build_tiny_model
    from mathfirst.tokenizer import train_tokenizer

    tok = train_tokenizer([q + "\n" + r for q, r in PAIRS], 320)
    model = build_tiny_model(
        ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64), tok, 0
    )
    cfg = TrainConfig(steps=steps, batch_size=4, lr=1e-2, warmup_steps=2, examples=10, save_every=save_every)
    train(model, tok, encode_chats(tok, PAIRS, True, 64), cfg, stage, seed=0, desc="sft")


def test_a_checkpoint_is_on_the_disk_before_it_is_renamed_in(tmp_path):
    """Traced system calls: every file of the new checkpoint and its folder are fsynced before the rename that
    makes it the checkpoint, and the parent folder after it."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    last, trace = tmp_path / "last", tmp_path / "trace.txt"
    script = TINY + (
        "from pathlib import Path\nfrom mathfirst.train.checkpoint import save_checkpoint\n"
        f"save_checkpoint(Path({str(last)!r}), model, tok, optimizer, 1)\n"
        f"save_checkpoint(Path({str(last)!r}), model, tok, optimizer, 2)\n"
    )
    command = ["strace", "-f", "-qq", "-y", "-e", "trace=fsync,rename", "-o", str(trace), sys.executable, "-c", script]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    calls = []
    for line in trace.read_text().splitlines():
        if m := re.search(r"fsync\(\d+<(.*)>\) += 0", line):
            calls.append(("fsync", m.group(1)))
        elif m := re.search(r'rename\("(.*)", "(.*)"\) += 0', line):
            calls.append(("rename", m.group(1), m.group(2)))
    swap = calls.index(("rename", f"{last}.tmp", str(last)), calls.index(("rename", str(last), f"{last}.old")))
    flushed = {c[1] for c in calls[:swap] if c[0] == "fsync"}
    files = {str(p).replace(str(last), f"{last}.tmp") for p in last.rglob("*")}
    assert files and files | {f"{last}.tmp"} <= flushed, sorted(files - flushed)
    assert ("fsync", str(tmp_path)) in calls[swap:]
    assert damage(last) is None and torch.load(last / "trainer_state.pt", weights_only=True)["step"] == 2


def test_a_truncated_checkpoint_stops_the_resume_with_one_line(tmp_path):
    tiny_training(tmp_path, steps=12, save_every=6)  # leaves its step-6 checkpoint, as a kill after step 6 would
    weights = tmp_path / "last" / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    metrics = (tmp_path / "metrics.jsonl").read_bytes()
    with pytest.raises(CheckpointDamaged) as stop:
        tiny_training(tmp_path, steps=12, save_every=6)
    message = str(stop.value)
    assert "\n" not in message and str(weights) in message and f"Delete {tmp_path / 'last'}" in message, message
    assert (tmp_path / "metrics.jsonl").read_bytes() == metrics  # nothing was written


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    """A kill between the swap's two renames leaves the previous checkpoint beside the new one: when the new one
    is damaged, the stage resumes from the previous one and says so."""
    tiny_training(tmp_path, steps=12, save_every=6)
    shutil.copytree(tmp_path / "last", tmp_path / "six")
    tiny_training(tmp_path, steps=18, save_every=6)  # resumes at 6, leaves its step-12 checkpoint
    (tmp_path / "six").rename(tmp_path / "last.old")
    state = tmp_path / "last" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    tiny_training(tmp_path, steps=18, save_every=6)
    said = capsys.readouterr().out
    assert f"{state} has 100 bytes of" in said and "resuming from the previous checkpoint" in said, said
    resumed = [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl") if r.get("event") == "resumed"]
    assert resumed[-1] == 6


def in_a_small_disk(folder: Path, mb: int, script: str, timeout: int = 300) -> dict:
    """Run Python `script` with a tmpfs of `mb` MiB at `folder`, in a mount namespace of its own (the tmpfs and
    what it holds are gone when it ends); its last line of output is JSON, returned."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    mount = 'mount -t tmpfs -o size="$1"m none "$2" && cd "$3" && exec "$4" -c "$5"'
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", mount, "sh", str(mb), str(folder)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    probe = subprocess.run([*command, str(ROOT), sys.executable, "pass"], capture_output=True, env=env)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a mount namespace here: {probe.stderr.decode().strip()}")
    done = subprocess.run([*command, str(ROOT), sys.executable, script], capture_output=True, text=True, env=env,
                          timeout=timeout)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


FILL = """
import os
def fill(folder):
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
"""


def test_a_disk_that_fills_during_a_save_leaves_the_last_checkpoint_whole(tmp_path):
    script = (
        TINY
        + FILL
        + (
            "import json, os\nfrom pathlib import Path\n"
            "from mathfirst.train.checkpoint import DiskFull, damage, save_checkpoint\n"
            f"disk = Path({str(tmp_path / 'disk')!r})\nlast = disk / 'last'\n"
            "save_checkpoint(last, model, tok, optimizer, 1)\nfill(disk)\n"
            "try:\n    save_checkpoint(last, model, tok, optimizer, 2)\n    stop = None\n"
            "except DiskFull as e:\n    stop = str(e)\n"
            "whole = damage(last) is None and torch.load(last / 'trainer_state.pt')['step'] == 1\n"
            "left = sorted(p.name for p in disk.iterdir())\n"
            "os.remove(disk / 'filler')\nsave_checkpoint(last, model, tok, optimizer, 2)\n"
            "print(json.dumps({'stop': stop, 'whole': whole, 'left': left, 'later': torch.load(last / "
            "'trainer_state.pt')['step']}))\n"
        )
    )
    result = in_a_small_disk(tmp_path / "disk", 8, script)
    assert result["stop"] and result["stop"].startswith("the disk is full") and "\n" not in result["stop"], result
    assert "--resume" in result["stop"] and result["whole"] and result["left"] == ["filler", "last"], result
    assert result["later"] == 2  # once there is room, the next save goes through


def test_a_disk_that_fills_during_a_log_write_stops_with_one_line(tmp_path):
    script = FILL + (
        "import json\nfrom pathlib import Path\nfrom mathfirst.train.checkpoint import DiskFull\n"
        "from mathfirst.train.metrics import MetricsLog, read_metrics\n"
        f"disk = Path({str(tmp_path / 'disk')!r})\n"
        "log = MetricsLog(disk / 'metrics.jsonl')\nlog.log(1, loss=1.0)\nfill(disk)\n"
        "stops = []\nfor step in (2, 3, 4):\n    try:\n        log.log(step, loss=1.0, note='x' * 5000)\n"
        "    except DiskFull as e:\n        stops.append(str(e))\n"
        "kept = [r['step'] for r in read_metrics(disk / 'metrics.jsonl')]\n"
        "print(json.dumps({'stops': stops, 'kept': kept}))\n"
    )
    result = in_a_small_disk(tmp_path / "disk", 1, script)
    assert len(result["stops"]) == 3 and all(s.startswith("the disk is full") for s in result["stops"]), result
    assert result["kept"] == [1]


def test_a_run_whose_disk_fills_stops_with_one_line_and_resumes_once_there_is_room(tmp_path):
    """The smoke curriculum's pretraining on a 64 MiB disk that another writer fills after the first checkpoint:
    the run stops with one line, its checkpoint whole; with the filler gone, --resume finishes the stage."""
    config = tmp_path / "pretrain.yaml"
    text = SMOKE.read_text().replace("stages: [pretrain, sft, rl_math, rl_joint]", "stages: [pretrain]")
    config.write_text(text.replace("steps: 40", "steps: 60", 1))
    out = tmp_path / "disk" / "run"
    script = FILL + (
        "import json, subprocess, sys, time\nfrom pathlib import Path\nfrom mathfirst.train.checkpoint import damage\n"
        f"out = Path({str(out)!r})\nlast = out / 'pretrain' / 'last'\n"
        "cli = [sys.executable, '-m', 'mathfirst.cli', 'run', '--out', str(out)]\n"
        f"run = subprocess.Popen([*cli, '--config', {str(config)!r}], stdout=subprocess.PIPE, stderr=subprocess.PIPE,"
        " text=True)\n"
        "while not (last / 'manifest.json').exists() and run.poll() is None:\n    time.sleep(0.05)\n"
        "fill(out.parent)\nstdout, stderr = run.communicate(timeout=300)\n"
        "checkpoint = {'damage': damage(last), 'exists': last.is_dir()}\n"
        "(out.parent / 'filler').unlink()\n"
        "again = subprocess.run([*cli, '--resume'], capture_output=True, text=True, timeout=300)\n"
        "print(json.dumps({'code': run.returncode, 'stderr': stderr, 'checkpoint': checkpoint,\n"
        "                  'again': again.returncode, 'again_out': again.stdout + again.stderr,\n"
        "                  'trained': (out / 'pretrain' / 'trained.json').is_file()}))\n"
    )
    result = in_a_small_disk(tmp_path / "disk", 64, script, timeout=600)
    lines = [line for line in result["stderr"].splitlines() if "error:" in line]
    assert result["code"] == 2 and len(lines) == 1 and "the disk is full" in lines[0], result["stderr"][-2000:]
    assert "Traceback" not in result["stderr"]
    assert result["checkpoint"] == {"damage": None, "exists": True}
    assert result["again"] == 0 and "pretrain: resumed from step" in result["again_out"], result["again_out"][-2000:]
    assert result["trained"]


def test_a_disk_that_fills_as_a_stage_saves_its_model_stops_with_one_line(tmp_path):
    script = (
        TINY
        + FILL
        + (
            "import json, os\nfrom pathlib import Path\nfrom mathfirst.train.checkpoint import DiskFull\n"
            "from mathfirst.curriculum import save_stage_model\n"
            f"disk = Path({str(tmp_path / 'disk')!r})\nstage = disk / 'sft'\nstage.mkdir()\nfill(disk)\n"
            "try:\n    save_stage_model(model, tok, stage, 'sft')\n    stop = None\n"
            "except DiskFull as e:\n    stop = str(e)\n"
            "os.remove(disk / 'filler')\nsave_stage_model(model, tok, stage, 'sft')\n"
            "print(json.dumps({'stop': stop, 'saved': sorted(p.name for p in stage.iterdir())}))\n"
        )
    )
    result = in_a_small_disk(tmp_path / "disk", 8, script)
    assert result["stop"] and result["stop"].startswith("the disk is full: sft's trained model"), result
    assert "\n" not in result["stop"] and "--resume" in result["stop"]
    assert {"config.json", "model.safetensors"} <= set(result["saved"])  # once there is room, it saves

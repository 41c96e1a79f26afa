"""End to end: the smoke curriculum through the real CLI, a kill -9 and a resume, and bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from mathfirst.data.domains import DOMAIN_NAMES
from mathfirst.run_lock import run_lock
from mathfirst.train.checkpoint import latest_checkpoint
from mathfirst.train.metrics import read_metrics

ROOT = Path(__file__).parent.parent
SMOKE = ROOT / "configs" / "smoke.yaml"


def mathfirst(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mathfirst.cli", *map(str, args)], capture_output=True, text=True, cwd=ROOT, **kw
    )


def test_smoke_curriculum_end_to_end(tmp_path):
    out = tmp_path / "run"
    proc = mathfirst("run", "--config", SMOKE, "--out", out, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in ("pretrain", "sft", "rl_math", "rl_joint"):
        d = out / stage
        assert {
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "metrics.jsonl",
            "eval.json",
            "samples.jsonl",
        } <= {p.name for p in d.iterdir()}
        AutoModelForCausalLM.from_pretrained(d)
        AutoTokenizer.from_pretrained(d)
        results = json.loads((d / "eval.json").read_text())["domains"]
        assert set(results) == set(DOMAIN_NAMES)
        assert all(0 <= r["greedy"] <= 1 and r["n"] == 10 for r in results.values())
        assert not (d / "last").exists()
    assert read_metrics(out / "pretrain" / "metrics.jsonl")[-1]["step"] == 40
    rl = read_metrics(out / "rl_joint" / "metrics.jsonl")
    assert [r["step"] for r in rl] == [1, 2, 3]
    assert {"reward", "acc", "entropy", "response_length", "dropped_share", "skill_backtracking"} <= set(rl[-1])
    assert "held-out accuracy after rl_joint" in proc.stdout
    curve = [json.loads(line) for line in (out / "rl_math" / "curve.jsonl").read_text().splitlines()]
    assert [p["step"] for p in curve] == [0, 2, 3] and all(set(p["domains"]) == set(DOMAIN_NAMES) for p in curve)
    assert (out / "report" / "learning_curves.png").is_file()
    report = (out / "report.md").read_text()  # the run ends with its report card, built from its own files
    assert (out / "report.html").is_file() and (out / "skills.json").is_file()
    evals = {
        s: json.loads((out / s / "eval.json").read_text())["domains"]
        for s in ("pretrain", "sft", "rl_math", "rl_joint")
    }
    for domain in DOMAIN_NAMES:
        cells = [
            f"{100 * r['greedy']:.1f}% [{100 * r['greedy_ci95'][0]:.1f}, {100 * r['greedy_ci95'][1]:.1f}]"
            for r in (evals[s][domain] for s in evals)
        ]
        assert f"| {domain} | {100 * evals['sft'][domain]['chance']:.1f}% | " + " | ".join(cells) + " |" in report

    # the ablation without math RL reuses the identical pretrain and SFT stages and trains only joint RL
    no_math = tmp_path / "no-math.yaml"
    text = SMOKE.read_text().replace("stages: [pretrain, sft, rl_math, rl_joint]", "stages: [pretrain, sft, rl_joint]")
    no_math.write_text(text)
    ablation = tmp_path / "ablation"
    proc = mathfirst("run", "--config", no_math, "--out", ablation, "--reuse", out, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reused from" in proc.stdout and "pretrain, sft" in proc.stdout
    assert (ablation / "sft" / "model.safetensors").read_bytes() == (out / "sft" / "model.safetensors").read_bytes()
    assert not (ablation / "rl_math").exists() and (ablation / "rl_joint" / "eval.json").is_file()

    # a replicate of the joint stage alone: its own seed, everything before it reused
    replicate = tmp_path / "replicate.yaml"
    replicate.write_text(SMOKE.read_text().replace("rl_joint:\n", "rl_joint:\n  seed: 7\n", 1))
    again = tmp_path / "again"
    proc = mathfirst("run", "--config", replicate, "--out", again, "--reuse", out, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pretrain, sft, rl_math" in proc.stdout
    first, second = sampled_prompts(out / "rl_joint"), sampled_prompts(again / "rl_joint")
    assert first and second and first != second


def sampled_prompts(stage_dir: Path) -> list[str]:
    """The ids of the prompts an RL stage sampled, in order (its groups.jsonl)."""
    steps = [json.loads(line) for line in (stage_dir / "groups.jsonl").read_text().splitlines()]
    return [group[0] for step in steps for group in step["groups"]]


def start_run(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mathfirst.cli", "run", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_after_checkpoint(proc: subprocess.Popen, stage_dir: Path) -> None:
    """kill -9 the run (and its children) once `stage_dir` holds a mid-stage checkpoint."""
    state = stage_dir / "last" / "trainer_state.pt"
    deadline = time.time() + 600
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert latest_checkpoint(state.parent) is not None, f"no checkpoint in {stage_dir} before the kill"
    assert not (stage_dir / "trained.json").exists()


def test_kill_during_pretraining_and_rl_then_resume(tmp_path):
    out = tmp_path / "run"
    cfg = tmp_path / "slow.yaml"
    text = SMOKE.read_text().replace("steps: 40", "steps: 100")
    cfg.write_text(text.replace("rl_math:\n  steps: 3", "rl_math:\n  steps: 30"))

    kill_after_checkpoint(start_run("--config", cfg, "--out", out), out / "pretrain")
    killed_at = max(r["step"] for r in read_metrics(out / "pretrain" / "metrics.jsonl"))
    assert 0 < killed_at < 100

    kill_after_checkpoint(start_run("--out", out, "--resume"), out / "rl_math")  # resumes, then dies in rl_math
    records = read_metrics(out / "pretrain" / "metrics.jsonl")
    resumed = [r for r in records if r.get("event") == "resumed"]
    assert len(resumed) == 1 and resumed[0]["step"] >= 10  # continued from a checkpoint, not from scratch
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == sorted(steps) and steps[-1] == 100 and len(steps) == len(set(steps))
    rl_killed_at = max(r["step"] for r in read_metrics(out / "rl_math" / "metrics.jsonl"))
    assert 0 < rl_killed_at < 30

    done = mathfirst("run", "--out", out, "--resume", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rl_math: resumed from step" in done.stderr + done.stdout
    rl_steps = [r["step"] for r in read_metrics(out / "rl_math" / "metrics.jsonl") if "reward" in r]
    assert rl_steps == list(range(1, 31))  # no step lost or repeated
    curve = [json.loads(line)["step"] for line in (out / "rl_math" / "curve.jsonl").read_text().splitlines()]
    assert curve == list(range(0, 31, 2))  # nor any learning-curve point
    for stage in ("pretrain", "sft", "rl_math", "rl_joint"):
        assert (out / stage / "eval.json").is_file()


def test_bad_config_is_one_clear_line_and_leaves_the_run_untouched(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("precious: true\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMOKE.read_text().replace("batch_size: 16", "batch_size: sixteen", 1))
    proc = mathfirst("run", "--config", bad, "--out", out)
    assert proc.returncode == 2
    assert "key `pretrain.batch_size`" in proc.stderr and str(bad) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert [p.name for p in out.iterdir()] == ["config.yaml"] and (
        out / "config.yaml"
    ).read_text() == "precious: true\n"


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text((SMOKE).read_text())
    proc = mathfirst("run", "--config", SMOKE, "--out", out)
    assert proc.returncode == 2 and "--resume" in proc.stderr and "Traceback" not in proc.stderr


def test_resume_without_a_run_and_unknown_stage_are_clear_errors(tmp_path):
    proc = mathfirst("run", "--out", tmp_path / "none", "--resume")
    assert proc.returncode == 2 and "nothing to resume" in proc.stderr
    proc = mathfirst("run", "--config", SMOKE, "--out", tmp_path / "x", "--stages", "dance")
    assert proc.returncode == 2 and "unknown stage 'dance'" in proc.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_tiny_default_learns(tmp_path):
    """The real default: math above 60% after pretrain + SFT, every other domain above chance and the five
    on average more than 10 points above it. (Every domain 10 points above chance held in 1 of 3 seeds of
    the old world and 0 of 3 of the answer-check world: tables end 6-16 points above; docs/study.md.)"""
    out = tmp_path / "tiny"
    proc = mathfirst("run", "--config", ROOT / "configs" / "tiny.yaml", "--out", out, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "sft" / "eval.json").read_text())["domains"]
    assert results["math"]["greedy"] >= 0.6
    above = {d: r["greedy"] - r["chance"] for d, r in results.items() if d != "math"}
    assert all(x > 0 for x in above.values()), above
    assert sum(above.values()) / len(above) > 0.1, above


def test_unreadable_data_file_is_a_clear_error_and_creates_nothing(tmp_path):
    rows = tmp_path / "extra.jsonl"
    rows.write_text('{"prompt": "Compute 1 + 1.", "response": "Answer: \\\\boxed{2}"}\n{"prompt": "oops"\n')
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SMOKE.read_text().replace("  domains: [math]", f"  domains: [math]\n  files: [{rows}]"))
    proc = mathfirst("run", "--config", cfg, "--out", tmp_path / "run")
    assert proc.returncode == 2 and "line 2 is not valid JSON" in proc.stderr and str(rows) in proc.stderr
    assert not (tmp_path / "run").exists()


def test_real_model_preset_without_the_model_is_a_clear_error(tmp_path):
    proc = mathfirst("run", "--config", ROOT / "configs" / "qwen3-4b.yaml", "--out", tmp_path / "q")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "model.init: models/Qwen3-4B-Base is not a local Hugging Face model folder (no config.json)" in proc.stderr
    assert not (tmp_path / "q").exists()

    partial = tmp_path / "partial"  # a folder with its config but not its weights stops the run before it starts
    partial.mkdir()
    shape = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 1000}  # fmt: skip
    (partial / "config.json").write_text(json.dumps(shape))
    cfg = tmp_path / "partial.yaml"
    cfg.write_text((ROOT / "configs" / "smollm2-135m.yaml").read_text().replace("models/smollm2-135m", str(partial)))
    proc = mathfirst("run", "--config", cfg, "--out", tmp_path / "p")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and f"model.init: {partial}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "p").exists()


def test_a_run_folder_in_use_is_refused_until_its_process_ends(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text(SMOKE.read_text())
    hold = f"from pathlib import Path; from mathfirst.run_lock import run_lock\nwith run_lock(Path({str(out)!r})):\n"
    holder = subprocess.Popen([sys.executable, "-c", hold + "    print('held', flush=True); input()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = mathfirst("run", "--out", out, "--resume")
        assert proc.returncode == 2 and f"in use by pid {holder.pid}" in proc.stderr, proc.stderr[-2000:]
        assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "run.lock"]  # nothing started in it
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the operating system drops the lock
        holder.wait()
    with run_lock(out):
        assert (out / "run.lock").read_text() == f"pid {os.getpid()}"

"""The peak-memory estimate: against measured peaks (two worst-case steps in a fresh process), and refusing a
stage that cannot fit before anything loads."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mathfirst.config import ConfigError, RunConfig, load_config
from mathfirst.curriculum import check_memory, fitted
from mathfirst.plan.plan import GB, estimate_stage, model_config, model_shape, plan

ROOT = Path(__file__).parents[2]
SHAPES = Path(__file__).parents[1] / "fixtures" / "shapes"
TOLERANCE = 0.25  # |estimate - measured| / measured on a CPU (the resident set also holds allocator caches)


def probe(tmp_path: Path, config: dict, stage: str) -> dict:
    path = tmp_path / f"{stage}.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "mathfirst.plan.probe", str(path), stage]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


TINY = {"stages": ["pretrain", "rl_math"], "pretrain": {"steps": 1, "batch_size": 16, "examples": 0},
        "rl_math": {"steps": 1, "prompts_per_step": 2, "mini_batch_groups": 2, "rollout_batch_size": 32}}  # fmt: skip


@pytest.mark.parametrize("stage", ["pretrain", "rl_math"])
def test_the_estimate_is_within_tolerance_of_the_measured_peak_for_the_tiny_model(tmp_path, stage):
    result = probe(tmp_path, TINY, stage)
    assert abs(result["estimated"] - result["measured"]) <= TOLERANCE * result["measured"], result


def qwen3_4b(**changes) -> RunConfig:
    cfg = load_config(ROOT / "configs" / "qwen3-4b.yaml")
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"init": str(SHAPES / "qwen3-4b")})} | changes)


def test_a_qwen3_4b_shape_is_refused_on_this_machine_before_anything_loads(tmp_path):
    """A config.json of Qwen3-4B's shape and no weights: full fine-tuning in fp32 on a 24 GiB CPU budget."""
    model = tmp_path / "qwen3-4b"
    shutil.copytree(SHAPES / "qwen3-4b", model)
    cfg = load_config(ROOT / "configs" / "qwen3-4b.yaml").model_dump(mode="json")
    cfg["model"]["init"] = str(model)
    for stage in ("sft", "rl_math", "rl_joint"):
        cfg[stage].pop("lora")
    cfg["memory_gb"] = 24
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    cli = [sys.executable, "-m", "mathfirst.cli", "run", "--config", str(tmp_path / "c.yaml"), "--out", str(out)]
    proc = subprocess.run(cli, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    line = " ".join(proc.stderr.split())
    assert "sft: needs about" in line and "GB it may use" in line and "change sft." in line, line
    assert not out.exists()  # refused before the run folder (or any weights) was touched


def test_the_shipped_4b_and_8b_presets_fit_one_80_gb_gpu():
    for name in ("qwen3-4b", "llama3.1-8b"):
        cfg = load_config(ROOT / "configs" / f"{name}.yaml")
        cfg = cfg.model_copy(
            update={"model": cfg.model.model_copy(update={"init": str(SHAPES / name)}), "memory_gb": 80}
        )
        estimates, budget = plan(cfg, "cuda")
        assert all(e.peak <= 0.9 * budget for e in estimates), [(e.stage, e.peak / GB) for e in estimates]
        check_memory(cfg)  # the pre-run check that `mathfirst run` makes
        assert all(e.rollout_rows >= 8 for e in estimates if e.rollout_rows is not None)


def test_lora_checkpointing_and_bf16_each_lower_the_estimate():
    base = estimate_stage(qwen3_4b(), "rl_math", "cuda", 80 * GB)
    full = qwen3_4b()
    full.rl_math = full.rl_math.model_copy(update={"lora": None})
    no_ckpt = qwen3_4b()
    no_ckpt.rl_math = no_ckpt.rl_math.model_copy(update={"gradient_checkpointing": False})
    fp32 = qwen3_4b()
    fp32.model = fp32.model.model_copy(update={"dtype": "float32"})
    assert estimate_stage(full, "rl_math", "cuda", 80 * GB).kept["optimizer"] > 20 * base.kept["optimizer"]
    assert (
        estimate_stage(no_ckpt, "rl_math", "cuda", 80 * GB).phases["update"]["activations"]
        > 10 * (base.phases["update"]["activations"])
    )
    assert estimate_stage(fp32, "rl_math", "cuda", 80 * GB).kept["weights"] > 1.9 * base.kept["weights"]


def test_the_sampler_rows_shrink_to_the_kv_budget_and_the_run_says_so(capsys):
    cfg = qwen3_4b(memory_gb=80)
    rows = plan(cfg, "cuda")[0][1].rollout_rows
    assert 1 <= rows < cfg.rl_math.rollout_batch_size
    shape = model_shape(model_config(cfg), cfg.rl_math.lora)
    kv_per_row = cfg.model.max_seq_len * shape.layers * shape.kv_dim * 2 * 2
    assert abs(estimate_stage(cfg, "rl_math", "cuda", 80 * GB).phases["sampling"]["kv_cache"] - rows * kv_per_row) == 0


def test_a_stage_that_fits_nowhere_names_the_keys_to_change():
    cfg = qwen3_4b(memory_gb=8)
    with pytest.raises(ConfigError, match=r"sft: needs about .* GB at its peak \(weights .*change sft.lora"):
        check_memory(cfg)


def test_plan_prints_every_stage_and_fails_when_one_does_not_fit(tmp_path):
    cli = [sys.executable, "-m", "mathfirst.cli", "plan", "--config", str(ROOT / "configs" / "tiny.yaml")]
    proc = subprocess.run(cli, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and all(s in proc.stdout for s in ("pretrain", "rl_joint", "eval")), proc.stderr
    proc = subprocess.run([*cli, "--memory-gb", "0.5"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "needs about" in proc.stderr
    if not torch.cuda.is_available():
        proc = subprocess.run([*cli, "--device", "cuda"], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 2 and "--memory-gb" in proc.stderr


def test_fitted_leaves_a_config_that_fits_unchanged():
    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    assert fitted(cfg) == cfg

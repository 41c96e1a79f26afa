"""The GPU check (scripts/gpu_check.sh, mathfirst/bench/gpu_check.py) on its tiny shape, on this CPU: the code a GPU
machine runs, with the presets' LoRA and checkpointing, so that its one command cannot rot before a GPU comes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mathfirst.bench.gpu_check import check, part_in_process

ROOT = Path(__file__).parents[2]
TOLERANCE = 0.25  # |estimate - measured| / measured, as tests/plan/test_memory.py holds the estimate on a CPU


@pytest.fixture(scope="module")
def tiny_check(tmp_path_factory) -> tuple[dict, str]:
    """One run of the script on the tiny shape: its JSON and what it printed."""
    out = tmp_path_factory.mktemp("gpu_check")
    env = os.environ | {"PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    cmd = ["bash", "scripts/gpu_check.sh", str(out), "--shape", "tiny"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "gpu_check.log").is_file()
    return json.loads((out / "gpu_check.json").read_text()), proc.stdout


def within_the_estimate(part: dict) -> bool:
    phases = part["phases"].values()
    return all(abs(p["estimated_gb"] - p["measured_gb"]) <= TOLERANCE * p["measured_gb"] for p in phases)


def test_the_script_installs_nothing_where_mathfirst_is_installed_and_names_the_device(tiny_check):
    result, printed = tiny_check
    assert printed.startswith("gpu_check: nothing to install")
    assert result["device"].endswith("CPU") and result["bf16_peak_tflops"] is None
    assert set(result["shapes"]["tiny"]) == {"sft", "dapo", "sampler_vs_generate"}


def test_the_sft_step_runs_with_the_presets_lora_and_checkpointing_within_the_estimate(tiny_check):
    sft = tiny_check[0]["shapes"]["tiny"]["sft"]
    assert sft["status"] == "ok", sft
    assert sft["lora_rank"] == 64 and sft["checkpointing"] and sft["micro_batch_size"] == 2 and sft["rows"] == 4
    assert sft["update_tokens_per_s"] > 0 and sft["mfu"] is None  # no known peak for a CPU
    assert within_the_estimate(sft), sft


def test_the_dapo_step_samples_verifies_and_updates_within_the_estimate(tiny_check):
    dapo = tiny_check[0]["shapes"]["tiny"]["dapo"]
    assert dapo["status"] == "ok", dapo
    assert dapo["responses"] == 16 and dapo["verifier"] == "math" and dapo["sampled_tokens"] > 0
    assert dapo["sample_tokens_per_s"] > 0 and dapo["update_tokens_per_s"] > 0
    assert within_the_estimate(dapo), dapo


def test_the_sampler_races_hf_generate_on_the_same_rows(tiny_check):
    race = tiny_check[0]["shapes"]["tiny"]["sampler_vs_generate"]
    assert race["status"] == "ok", race
    assert race["rows"] == 16 and race["sampler_tokens_per_s"] > 0 and race["hf_generate_tokens_per_s"] > 0
    assert race["speedup"] == pytest.approx(race["sampler_tokens_per_s"] / race["hf_generate_tokens_per_s"], 0.01)


def test_a_part_past_its_budget_is_killed_and_recorded_as_a_timeout(tmp_path):
    with open(tmp_path / "log", "w") as log:
        result = part_in_process("tiny", "sft", 16, 1, log)
    assert result["status"] == "timeout" and result["seconds"] < 10


def test_parts_left_without_time_are_skipped_and_the_json_is_written(tmp_path):
    result = check(tmp_path, ["tiny"], 5, None, {})
    assert [p["status"] for p in result["shapes"]["tiny"].values()] == ["skipped"] * 3
    assert json.loads((tmp_path / "gpu_check.json").read_text()) == result

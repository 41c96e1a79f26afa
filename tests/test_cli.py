import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from mathfirst.data.domains import DOMAIN_NAMES

ROOT = Path(__file__).parent.parent


def mathfirst(*args):
    return subprocess.run(
        [sys.executable, "-m", "mathfirst.cli", *map(str, args)], capture_output=True, text=True, cwd=ROOT
    )


def test_data_preview_prints_worked_examples():
    proc = mathfirst("data", "preview", "--domain", "logic", "-n", "3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Answer: \\boxed{") == 3 and "Subgoal:" in proc.stdout


def test_data_preview_unknown_domain():
    proc = mathfirst("data", "preview", "--domain", "poetry")
    assert proc.returncode == 2 and "unknown domain 'poetry'" in proc.stderr and "Traceback" not in proc.stderr


def test_data_export_writes_verl_parquet(tmp_path):
    proc = mathfirst("data", "export", "--out", tmp_path, "--train-per-domain", "20", "--heldout-per-domain", "5")
    assert proc.returncode == 0, proc.stderr
    train = pq.read_table(tmp_path / "train.parquet").to_pylist()
    heldout = pq.read_table(tmp_path / "heldout.parquet").to_pylist()
    assert len(train) == 20 * len(DOMAIN_NAMES) and len(heldout) == 5 * len(DOMAIN_NAMES)
    row = train[0]
    assert {"data_source", "prompt", "ability", "reward_model", "extra_info"} <= set(row)
    assert row["prompt"][0]["role"] == "user" and row["reward_model"]["style"] in ("rule", "execution")
    assert {r["ability"] for r in train} == set(DOMAIN_NAMES)
    assert not {r["extra_info"]["uid"] for r in train} & {r["extra_info"]["uid"] for r in heldout}


def test_run_without_a_config_uses_the_shipped_default_anywhere(tmp_path):
    """Outside a checkout (no configs/ folder here) the default preset comes with the package."""
    cli = [sys.executable, "-m", "mathfirst.cli", "run", "--out", str(tmp_path / "r"), "--stages", "nothing"]
    proc = subprocess.run(cli, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "unknown stage 'nothing'" in proc.stderr, proc.stderr

"""`mathfirst study`: the claims' statistics on run folders written as the curriculum writes them, and one
real two-seed study of the smoke config (slow)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mathfirst.config import ConfigError, load_config
from mathfirst.eval.paired import task_scores
from mathfirst.study.study import run_study, schedule_changes, verdict, write_study
from tests.eval.test_report import make_run

ROOT = Path(__file__).parents[2]


def make_study(out: Path, seeds: int, lift: float) -> None:
    """Per seed, a curriculum whose math RL lifts math by `lift` and whose joint RL lifts logic, and an
    ablation level with the curriculum's math stage."""
    for s in range(seeds):
        make_run(out / f"seed{s}" / "curriculum", {
            "sft": {"math": 0.5, "stem": 0.2, "logic": 0.3},
            "rl_math": {"math": 0.5 + lift, "stem": 0.2, "logic": 0.3},
            "rl_joint": {"math": 0.5 + lift, "stem": 0.2, "logic": 0.3 + lift},
        })  # fmt: skip
        make_run(out / f"seed{s}" / "ablation", {
            "sft": {"math": 0.5, "stem": 0.2, "logic": 0.3},
            "rl_joint": {"math": 0.5, "stem": 0.2, "logic": 0.3},
        })  # fmt: skip


def test_claims_verdicts_and_figures(tmp_path):
    plan = {"config": "c.yaml", "ablation": "a.yaml", "seeds": 2, "losses": [None]}
    make_study(tmp_path, 2, lift=0.2)
    (tmp_path / "study.json").write_text(json.dumps({"plan": plan}))
    result = write_study(tmp_path, 2, [None])
    claims = result["groups"]["configured"]["claims"]
    assert claims["math_rl_raises_math"]["diff"] == 0.2 and claims["math_rl_raises_math"]["verdict"] == "supported"
    others = claims["joint_rl_raises_others"]  # logic +20 points, stem level: +10 over the two domains
    assert others["diff"] == 0.1 and others["verdict"] == "supported" and others["per_seed"] == [0.1, 0.1]
    assert claims["math_stage_helps_others"]["diff"] == 0.1
    assert claims["math_rl_raises_math_mean_at_k"]["diff"] == 0.1  # one sample of two follows greedy, one fails
    assert claims["math_rl_raises_math_mean_at_k"]["claim"] == "math RL raises math, mean@k"
    assert claims["verification_grows"]["diff"] == 0.0 and claims["verification_grows"]["verdict"] == "not supported"
    assert claims["backtracking_transfers"] == {
        **claims["backtracking_transfers"],
        "diff": 0.0,
        "verdict": "not supported",
    }
    diff = result["groups"]["configured"]["curriculum_minus_ablation"]
    assert diff["math"]["diff"] == 0.2 and diff["stem"] == {**diff["stem"], "diff": 0.0, "distinct": False}
    text = (tmp_path / "study.md").read_text()
    assert "| math RL raises math | +20.0 [" in text and "| supported |" in text
    assert all((tmp_path / f"study_configured_{f}.png").is_file() for f in ("accuracy", "ablation", "skills"))
    assert json.loads((tmp_path / "study.json").read_text())["groups"]["configured"]["claims"] == claims


def test_verdicts_follow_the_interval():
    assert verdict({"ci95": [0.01, 0.05]}) == "supported"
    assert verdict({"ci95": [-0.05, 0.015]}) == "not supported"  # rules out +2 points
    assert verdict({"ci95": [-0.05, 0.08]}) == "cannot tell at this power"


def test_a_study_folder_with_other_settings_is_refused(tmp_path):
    config = ROOT / "configs" / "smoke.yaml"
    (tmp_path / "study.json").write_text(json.dumps({"plan": {"seeds": 5}}))
    with pytest.raises(ConfigError, match="other settings"):
        run_study(config, ROOT / "configs" / "smoke-no-math.yaml", 2, [None], tmp_path)


@pytest.mark.slow
def test_a_smoke_study_under_two_losses_runs_and_resumes(tmp_path):
    """One seed of the smoke config under DAPO and GSPO, each with a transfer-schedule arm: six runs, SFT
    trained once and shared, each schedule arm's math stage its curriculum's."""
    cli = [sys.executable, "-m", "mathfirst.cli", "study", "--config", str(ROOT / "configs" / "smoke.yaml"),
           "--seeds", "1", "--losses", "dapo,gspo", "--schedules", "transfer",
           "--out", str(tmp_path / "study")]  # fmt: skip
    done = subprocess.run(cli, capture_output=True, text=True, timeout=1800, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "study" / "study.json").read_text())
    assert set(result["groups"]) == {"dapo", "gspo"}
    for group in result["groups"].values():
        assert {"math_rl_raises_math", "math_stage_helps_others"} <= set(group["claims"])
    gspo = tmp_path / "study" / "gspo" / "seed0"
    assert yaml.safe_load((gspo / "curriculum" / "config.yaml").read_text())["rl_math"]["loss"] == "gspo"
    sft = (tmp_path / "study" / "dapo" / "seed0" / "curriculum" / "sft" / "model.safetensors").read_bytes()
    assert (gspo / "curriculum" / "sft" / "model.safetensors").read_bytes() == sft  # trained once, shared
    assert (gspo / "ablation" / "sft" / "model.safetensors").read_bytes() == sft
    arm = gspo / "schedule-transfer"
    assert yaml.safe_load((arm / "config.yaml").read_text())["rl_joint"]["schedule"] == "transfer"
    math_rl = (gspo / "curriculum" / "rl_math" / "model.safetensors").read_bytes()
    assert (arm / "rl_math" / "model.safetensors").read_bytes() == math_rl
    assert "transfer_schedule_beats_fixed" in result["groups"]["gspo"]["claims"]
    again = subprocess.run(cli, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 0 and "gspo: math RL raises math" in again.stdout


def test_the_payoff_of_a_move_is_the_accuracy_with_it_minus_without(tmp_path):
    """Sampled responses that backtrack are the solved ones: the move pays off by all 100 points."""
    plan = {"config": "c.yaml", "ablation": "a.yaml", "seeds": 2, "losses": [None]}
    make_study(tmp_path, 2, lift=0.2)
    for s in range(2):
        path = tmp_path / f"seed{s}" / "curriculum" / "rl_joint" / "samples.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for r in rows:
            r["skills"] = {**r["skills"], "backtracking": r["score"] == 1.0}
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "study.json").write_text(json.dumps({"plan": plan}))
    payoff = write_study(tmp_path, 2, [None])["groups"]["configured"]["payoff"]
    paid = payoff["backtracking"]["others"]["rl_joint"]
    assert paid["diff"] == 1.0 and paid["distinct"] and sum(paid["n"]) == 2 * 2 * 2 * 100  # seeds x domains x samples
    assert payoff["backtracking"]["others"]["sft"] is None  # every response shows it: nothing to compare with
    logic = task_scores(tmp_path / "seed0" / "curriculum" / "rl_joint")["logic"]  # solved: 2 samples, 1 solved
    assert logic["backtracking_sampled"] == [0.5] * 50 + [0.0] * 50 and logic["verification_sampled"] == [1.0] * 100
    assert "| backtracking, others | – | – | +100.0 [+100.0, +100.0] * (" in (tmp_path / "study.md").read_text()


def test_the_models_checks_are_split_by_outcome(tmp_path):
    """Every response of the fixture has one passing check: its accuracy is the stage's sampled accuracy."""
    plan = {"config": "c.yaml", "ablation": "a.yaml", "seeds": 2, "losses": [None]}
    make_study(tmp_path, 2, lift=0.2)
    (tmp_path / "study.json").write_text(json.dumps({"plan": plan}))
    checks = write_study(tmp_path, 2, [None])["groups"]["configured"]["checks"]
    passed = checks["math"]["rl_math"]["checks pass"]
    assert passed["acc"] == 0.35 and passed["n"] == 2 * 2 * 100  # (0.7 + 0) / 2 over seeds x samples x tasks
    assert checks["others"]["sft"]["a check fails"] == {"acc": None, "ci95": [0.0, 1.0], "n": 0}
    assert "| math: checks pass | 25.0% [" in (tmp_path / "study.md").read_text()


def test_an_adaptive_schedule_arm_is_judged_against_the_fixed_curriculum(tmp_path):
    """An arm whose joint RL lifts the other domains more, and sooner on its learning curve: its claim is
    supported, and it reaches the fixed curriculum's final non-math accuracy in half the training time."""
    make_study(tmp_path, 2, lift=0.2)
    for s in range(2):
        make_run(tmp_path / f"seed{s}" / "schedule-transfer", {
            "sft": {"math": 0.5, "stem": 0.2, "logic": 0.3},
            "rl_math": {"math": 0.7, "stem": 0.2, "logic": 0.3},
            "rl_joint": {"math": 0.7, "stem": 0.6, "logic": 0.9},
        })  # fmt: skip
    plan = {"config": "c.yaml", "ablation": "a.yaml", "seeds": 2, "losses": [None], "schedules": ["transfer"]}
    (tmp_path / "study.json").write_text(json.dumps({"plan": plan}))
    group = write_study(tmp_path, 2, [None], ["transfer"])["groups"]["configured"]
    assert group["claims"]["transfer_schedule_beats_fixed"]["verdict"] == "supported"
    assert group["claims"]["transfer_schedule_beats_fixed_math"]["diff"] == pytest.approx(0.0)
    times = group["time_to_fixed"]["transfer"]
    assert times["per_seed"][0] == {"target": 0.35, "fixed_s": 120.0, "adaptive_s": 60.0}  # curve points 0, 60, 120 s
    assert times["speedup"] == 2.0
    assert "2.00x" in (tmp_path / "study.md").read_text()
    fixed, transfer = group["schedule_curves"]["fixed"][0], group["schedule_curves"]["transfer"][0]
    assert transfer[1][0] == 60.0 and transfer[1][1] >= fixed[-1][1] == 0.35  # (training s, mean outside math)
    assert "(study_configured_schedules.png)" in (tmp_path / "study.md").read_text()
    assert (tmp_path / "study_configured_schedules.png").stat().st_size > 0


def test_a_schedule_arm_changes_only_the_stages_that_draw_several_domains():
    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    assert schedule_changes(cfg, "learnability") == {"rl_joint": {"schedule": "learnability"}}
    assert schedule_changes(cfg, None) == {}

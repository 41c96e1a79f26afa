"""The learning race (`mathfirst bench --model DIR --learning MINUTES`): the speedup's definition, TRL's settings
and reward against ours, and a race of a few seconds on a tiny random model."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mathfirst.bench.bench import learning_speedup
from mathfirst.cli import app
from tests.bench.test_bench import tiny_llama

SMOKE = Path(__file__).parents[2] / "configs" / "smoke.yaml"


def curve(*points: tuple[float, float]) -> list[dict]:
    return [{"train_s": t, "accuracy": a} for t, a in points]


def test_the_speedup_is_trls_time_to_ours_final_accuracy_over_ours():
    ours = curve((0, 0.2), (60, 0.5), (120, 0.45), (180, 0.5))  # first at 0.5 after 60 s
    trl = curve((0, 0.2), (100, 0.3), (300, 0.5), (400, 0.6))
    r = learning_speedup(ours, trl)
    assert r["learning_speedup_vs_trl"] == 5.0 and not r["learning_speedup_is_lower_bound"]
    assert (r["learning_target_accuracy"], r["ours_time_to_target_s"], r["trl_time_to_target_s"]) == (0.5, 60, 300)


def test_when_trl_never_gets_there_the_speedup_is_its_whole_time_over_ours_a_lower_bound():
    ours = curve((0, 0.2), (60, 0.3), (120, 0.5))
    trl = curve((0, 0.2), (200, 0.45), (450, 0.4))
    r = learning_speedup(ours, trl)
    assert r["learning_speedup_vs_trl"] == 3.75 and r["learning_speedup_is_lower_bound"]  # >= 450 / 120
    assert r["trl_time_to_target_s"] is None


def test_no_speedup_when_ours_ends_no_better_than_it_started():
    r = learning_speedup(curve((0, 0.3), (60, 0.4), (120, 0.3)), curve((0, 0.3), (100, 0.5)))
    assert r["learning_speedup_vs_trl"] is None and "no better" in r["learning_note"]


def test_trl_gets_our_dapo_settings_and_our_reward(tmp_path):
    from mathfirst.bench.learning import trl_args, updates_per_step
    from mathfirst.config import load_config
    from mathfirst.data.assemble import heldout_prompts
    from mathfirst.rl.loop import dapo_rewards

    cfg = load_config(SMOKE, {"model": {"init": str(tmp_path)}})
    rcfg = cfg.rl_math  # 4 prompts x 4 per step, 2 groups per optimizer step, up to 48 tokens, buffer 8
    args = trl_args(rcfg, str(tmp_path), 0, torch.float32)
    assert (args.loss_type, args.epsilon, args.epsilon_high, args.delta, args.beta) == ("dapo", 0.2, 0.28, 3.0, 0.0)
    assert args.num_generations == 4 and args.per_device_train_batch_size == 4  # one group per forward ...
    assert args.steps_per_generation == 4 and args.gradient_accumulation_steps == 2  # ... 2 groups per update
    assert args.steps_per_generation // args.gradient_accumulation_steps == updates_per_step(rcfg) == 2
    assert (args.max_completion_length, args.temperature, args.top_p, args.scale_rewards) == (48, 1.0, 1.0, "group")
    assert (args.num_iterations, args.max_grad_norm, args.bf16, args.activation_checkpointing) == (1, 1.0, False, False)
    task = heldout_prompts(cfg, "math")[0]
    right, wrong = f"\\boxed{{{task.ground_truth}}}", "\\boxed{-12345}"
    texts, lengths = [right, wrong, right, right], [10, 10, 44, 48]  # 44: half-way into the overlong buffer
    assert dapo_rewards([task] * 4, texts, lengths, rcfg)[1] == [1.0, -1.0, 0.5, 0.0]


def test_trl_gets_our_adamw_and_our_warm_up_per_rl_step(tmp_path):
    from mathfirst.bench.learning import our_optimizer
    from mathfirst.config import load_config
    from mathfirst.rl.loop import lr_at

    rcfg = load_config(SMOKE, {"model": {"init": str(tmp_path)}, "rl_math": {"warmup_steps": 2}}).rl_math
    optimizer, schedule = our_optimizer(torch.nn.Linear(2, 2), rcfg)  # 2 optimizer steps per RL step
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == pytest.approx([lr_at(k // 2, rcfg) for k in range(6)]) and rates[0] == pytest.approx(rcfg.lr / 2)
    assert optimizer.defaults["betas"] == rcfg.adam_betas and optimizer.defaults["weight_decay"] == rcfg.weight_decay


def test_learning_needs_a_model_folder():
    result = CliRunner().invoke(app, ["bench", "--learning", "1"])
    assert result.exit_code == 2 and "--model" in result.output


def test_a_race_of_seconds_on_a_tiny_model_writes_both_curves_their_plot_and_the_speedup(tmp_path, monkeypatch):
    folder = tiny_llama(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = ["bench", "--model", str(folder), "--learning", "0.05", "--config", str(SMOKE)]  # 3 s each
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "bench" / "learning-tiny-llama.json").read_text())
    every, curves = out["eval_every_train_s"], out["curves"]
    assert every == 0.5 and out["heldout_math_tasks"] == 5  # smoke: eval_tasks 5
    for name in ("ours", "trl"):
        points = curves[name]
        assert points[0]["step"] == 0 and points[0]["train_s"] == 0.0
        assert points[-1]["step"] > 0 and points[-1]["train_s"] >= 3.0  # the last point ends the budget
        assert all(p["train_s"] >= k * every for k, p in enumerate(points))  # the clock runs between points only
        assert all(p["ci95"][0] <= p["accuracy"] <= p["ci95"][1] and p["n"] == 5 for p in points)
        assert out[f"{name}_final_accuracy"] == points[-1]["accuracy"] and out[f"{name}_steps"] == points[-1]["step"]
    assert curves["ours"][0]["accuracy"] == curves["trl"][0]["accuracy"]  # one model, measured alike
    assert learning_speedup(curves["ours"], curves["trl"]).items() <= out.items()
    assert (tmp_path / "bench" / "learning-tiny-llama.png").read_bytes().startswith(b"\x89PNG")
    assert "learning_speedup_vs_trl" in result.output

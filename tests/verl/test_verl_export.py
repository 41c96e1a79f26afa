"""`mathfirst export verl`: files, values and tags; composition with verl's own Hydra configs and scoring by
verl's DAPO reward manager (tests/fixtures/verl_compose.py, in a subprocess); `run --engine verl` errors."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from mathfirst.config import ConfigError, load_config
from mathfirst.rl.dapo import overlong_penalty
from mathfirst.verl.export import export_verl

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("verl")
    cfg = load_config(ROOT / "configs" / "smoke.yaml")
    cfg.sft.optimizer = "adamw"  # the tiny world's Muon has no verl counterpart (test below)
    folders = export_verl(cfg, out)
    assert list(folders) == ["sft", "rl_math", "rl_joint"]  # pretrain is tiny-only: not exported
    return out


def overrides(export: Path, stage: str) -> dict[str, str]:
    lines = (export / stage / "overrides.txt").read_text().splitlines()
    return dict(line.lstrip("+").split("=", 1) for line in lines)


def test_export_writes_data_settings_and_a_launch_script(export):
    rl = overrides(export, "rl_math")
    assert rl["algorithm.adv_estimator"] == "grpo" and rl["actor_rollout_ref.actor.loss_agg_mode"] == "token-mean"
    assert (
        rl["actor_rollout_ref.actor.clip_ratio_low"] == "0.2"
        and rl["actor_rollout_ref.actor.clip_ratio_high"] == "0.28"
    )
    assert rl["actor_rollout_ref.actor.use_kl_loss"] == "false" and rl["algorithm.use_kl_in_reward"] == "false"
    assert rl["algorithm.filter_groups.enable"] == "true" and rl["algorithm.filter_groups.metric"] == "acc"
    assert rl["reward.reward_kwargs.overlong_buffer_cfg.enable"] == "true"
    assert rl["trainer.test_freq"] == "2" and rl["trainer.val_before_train"] == "true"  # smoke: eval_every 2
    joint = overrides(export, "rl_joint")
    assert joint["trainer.test_freq"] == "3" and joint["trainer.val_before_train"] == "false"  # once, at the end
    assert rl["reward.custom_reward_function.path"] == str(export / "reward.py")
    tags = (export / "rl_math" / "config.yaml").read_text()
    assert "actor_rollout_ref.actor.clip_ratio_high: 0.28  # (paper)" in tags
    assert "actor_rollout_ref.rollout.n: 4  # (recipe)" in tags
    rows = pq.read_table(export / "rl_joint" / "train.parquet").to_pylist()
    assert {r["ability"] for r in rows} == {"math", "stem", "code", "simulation", "logic", "table"}
    assert set(rows[0]) >= {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    assert {r["ability"] for r in pq.read_table(export / "rl_math" / "train.parquet").to_pylist()} == {"math"}
    sft = pq.read_table(export / "sft" / "train.parquet").to_pylist()
    assert [m["role"] for m in sft[0]["messages"]] == ["user", "assistant"]
    launch = (export / "launch.sh").read_text()
    assert launch.index("run_stage sft") < launch.index("run_stage rl_math") < launch.index("run_stage rl_joint")
    assert subprocess.run(["bash", "-n", str(export / "launch.sh")]).returncode == 0


def test_overrides_compose_with_verl_and_its_reward_manager_scores_our_rows(export, tmp_path):
    """verl must be installed (`make dev` does it): Hydra rejects any key verl does not know."""
    from mathfirst.config import ModelConfig
    from mathfirst.model import build_tiny_model, save_model
    from mathfirst.tokenizer import train_tokenizer

    tok_dir = tmp_path / "tok"
    tok = train_tokenizer(["Compute 12 + 34. \\boxed{46}"] * 10, 300)
    save_model(
        build_tiny_model(ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1), tok, 0), tok, tok_dir
    )
    rows = pq.read_table(export / "rl_joint" / "val.parquet").to_pylist()
    answers = [
        f"Answer: \\boxed{{{r['reward_model']['ground_truth']}}}" if i % 2 == 0 else "\\boxed{?}"
        for i, r in enumerate(rows)
    ]
    answers[1] = "so " * 60 + "\\boxed{?}"  # longer than max_resp_len - buffer: the overlong penalty applies
    script = ROOT / "tests" / "fixtures" / "verl_compose.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(export), str(tok_dir), json.dumps(answers)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for stage in ("sft", "rl_math", "rl_joint"):
        for key, value in overrides(export, stage).items():
            composed = result[stage][key]
            assert str(composed).lower().replace("'", "").replace(" ", "") == value.lower().replace("'", ""), key
    rl = load_config(ROOT / "configs" / "smoke.yaml").rl_joint
    lengths = torch.tensor([len(tok(a).input_ids) for a in answers])
    penalty = overlong_penalty(lengths, rl.max_new_tokens, rl.overlong_buffer, rl.overlong_penalty).tolist()
    right = [i % 2 == 0 and r["ability"] != "code" for i, r in enumerate(rows)]  # code rows get no program
    expected = [(1.0 if ok else -1.0) + p for ok, p in zip(right, penalty)]
    assert result["reward_scores"] == pytest.approx(expected, abs=1e-5) and penalty[1] < 0
    assert {"acc", "score", "verifier"} <= set(result["reward_extra_keys"])


def test_muon_sft_does_not_export_silently_as_adamw(tmp_path):
    with pytest.raises(ConfigError, match="sft.optimizer: muon has no verl counterpart"):
        export_verl(load_config(ROOT / "configs" / "smoke.yaml"), tmp_path)


def test_engine_verl_needs_its_extra_and_a_real_model(tmp_path):
    cli = [sys.executable, "-m", "mathfirst.cli", "run", "--engine"]
    proc = subprocess.run([*cli, "verl", "--config", "configs/smoke.yaml", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 2 and "mathfirst[verl]" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([*cli, "spark"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "unknown engine" in proc.stderr


@pytest.mark.parametrize("preset", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_every_preset_exports_on_a_fresh_clone(preset, tmp_path):
    """Every preset runs on generated data (the tiny world, reasoning-gym): no file a fresh clone lacks."""
    cfg = load_config(ROOT / "configs" / preset)
    for stage in cfg.stages:
        assert not getattr(cfg, stage).files, f"{preset}: {stage} needs files a fresh clone does not have"
    if cfg.sft is not None:
        cfg.sft.optimizer = "adamw"  # the tiny world's Muon has no verl counterpart (tested above)
    for section in (cfg.rl_math, cfg.rl_joint, cfg.eval):  # fewer gym rows: some tasks (zebra) are slow to build
        if section is not None and section.reasoning_gym is not None:
            section.reasoning_gym.rows_per_domain = min(section.reasoning_gym.rows_per_domain, 40)
    folders = export_verl(cfg, tmp_path)
    for stage, folder in folders.items():
        assert pq.read_metadata(folder / "train.parquet").num_rows > 0, f"{preset}: {stage} exported no rows"


def test_export_draws_the_prompts_the_native_trainer_draws(tmp_path):
    from mathfirst.data.assemble import rl_prompts

    cfg = load_config(ROOT / "configs" / "smollm2-135m.yaml")
    cfg.stages = ["rl_joint"]
    export_verl(cfg, tmp_path)
    rows = pq.read_table(tmp_path / "rl_joint" / "train.parquet").to_pylist()
    native = [p for pool in rl_prompts(cfg, "rl_joint").values() for p in pool]
    assert [(r["data_source"], r["prompt"][0]["content"], r["reward_model"]["ground_truth"]) for r in rows] == [
        (p.data_source, p.question, p.ground_truth) for p in native
    ]
    assert {r["data_source"].split("/")[0] for r in rows} == {"reasoning_gym", "tiny"}
    held = {r["extra_info"]["uid"] for r in pq.read_table(tmp_path / "rl_joint" / "val.parquet").to_pylist()}
    assert held and not held & {r["extra_info"]["uid"] for r in rows}  # held-out rows never train


@pytest.mark.parametrize("loss", ["dapo", "grpo", "dr_grpo", "gspo", "cispo"])
def test_every_loss_exports_to_verls_keys(loss, tmp_path):
    """The keys are the same for every loss (their composition with verl's Hydra config is tested above); the
    values are verl's names for what each loss defines."""
    cfg = load_config(ROOT / "configs" / "smoke.yaml")
    cfg.sft.optimizer = "adamw"
    cfg.rl_math = cfg.rl_math.model_validate(cfg.rl_math.model_dump(exclude_unset=True) | {"loss": loss})
    export_verl(cfg, tmp_path)
    rl = overrides(tmp_path, "rl_math")
    want = {"dapo": ("vanilla", "token-mean", "true"), "grpo": ("vanilla", "seq-mean-token-mean", "true"),
            "dr_grpo": ("vanilla", "seq-mean-token-sum-norm", "false"), "gspo": ("gspo", "seq-mean-token-mean", "true"),
            "cispo": ("cispo", "token-mean", "true")}[loss]  # fmt: skip
    got = (rl["actor_rollout_ref.actor.policy_loss.loss_mode"], rl["actor_rollout_ref.actor.loss_agg_mode"],
           rl["algorithm.norm_adv_by_std_in_grpo"].lower())  # fmt: skip
    assert got == want
    assert rl["actor_rollout_ref.actor.loss_scale_factor"] == str(cfg.rl_math.max_new_tokens)
    assert float(rl["actor_rollout_ref.actor.clip_ratio_low"]) == cfg.rl_math.clip_low
    assert (rl["actor_rollout_ref.actor.use_kl_loss"].lower() == "true") == (loss == "grpo")


@pytest.mark.parametrize(
    "change, message",
    [({"prompt_selection": "informative"}, "rl_joint.prompt_selection: informative is native-only"),
     ({"schedule": "transfer"}, "rl_joint.schedule: transfer is native-only"),
     ({"streaming": True}, "rl_joint.streaming is native-only")],
)  # fmt: skip
def test_native_only_prompt_and_domain_schedules_do_not_export_silently(tmp_path, change, message):
    cfg = load_config(ROOT / "configs" / "smoke.yaml", {"rl_joint": change})
    cfg.sft.optimizer = "adamw"
    with pytest.raises(ConfigError, match=message):
        export_verl(cfg, tmp_path)


def test_a_learning_curve_exports_as_verls_validation(tmp_path):
    """eval_every is verl's test_freq (with a validation before training), on the curve's own held-out tasks."""
    cfg = load_config(ROOT / "configs" / "smoke.yaml", {"rl_math": {"eval_every": 2, "eval_tasks": 3}})
    cfg.sft.optimizer = "adamw"
    export_verl(cfg, tmp_path)
    rl = overrides(tmp_path, "rl_math")
    assert rl["trainer.test_freq"] == "2" and rl["trainer.val_before_train"] == "true"
    val = pq.read_table(tmp_path / "rl_math" / "val.parquet").to_pylist()
    assert len(val) == 3 * len(cfg.eval.domains) and {r["ability"] for r in val} == set(cfg.eval.domains)


def test_a_stage_with_its_own_seed_exports_its_own_prompts_and_shuffle(export, tmp_path):
    cfg = load_config(ROOT / "configs" / "smoke.yaml", {"rl_joint": {"seed": 7}})
    cfg.sft.optimizer = "adamw"
    export_verl(cfg, tmp_path)
    assert overrides(tmp_path, "rl_joint")["data.seed"] == "7"
    assert overrides(export, "rl_joint")["data.seed"] == str(cfg.seed)
    questions = [
        [r["prompt"][0]["content"] for r in pq.read_table(folder / "rl_joint" / "train.parquet").to_pylist()]
        for folder in (export, tmp_path)
    ]
    assert questions[0] != questions[1]
    math_rows = [pq.read_table(folder / "rl_math" / "train.parquet").to_pylist() for folder in (export, tmp_path)]
    assert math_rows[0] == math_rows[1]  # the other stages keep theirs

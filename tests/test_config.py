from pathlib import Path

import pytest

from mathfirst.config import ConfigError, EvalConfig, ModelConfig, WorldConfig, load_config

CONFIGS = Path(__file__).parent.parent / "configs"


@pytest.mark.parametrize("name", ["tiny.yaml", "smoke.yaml"])
def test_presets_load(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.stages == ["pretrain", "sft", "rl_math", "rl_joint"]
    assert cfg.sft.domains == ["math"] and cfg.rl_math.domains == ["math"]
    assert len(cfg.rl_joint.domains) == 6
    assert (cfg.rl_math.clip_low, cfg.rl_math.clip_high, cfg.rl_math.loss_agg) == (0.2, 0.28, "token-mean")


@pytest.mark.parametrize("name", ["qwen3-4b.yaml", "llama3.1-8b.yaml"])
def test_real_model_presets_load_with_the_dapo_settings(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.stages == ["sft", "rl_math", "rl_joint"] and cfg.model.init.startswith("models/")
    for rl in (cfg.rl_math, cfg.rl_joint):
        assert (rl.clip_low, rl.clip_high, rl.loss_agg, rl.kl_coef) == (0.2, 0.28, "token-mean", 0.0)
        assert rl.dynamic_sampling and rl.overlong_buffer > 0 and rl.reasoning_gym is not None  # runs on a fresh clone


def test_code_defaults_are_the_default_preset():
    tiny = load_config(CONFIGS / "tiny.yaml")
    assert (tiny.model, tiny.world, tiny.eval) == (ModelConfig(), WorldConfig(), EvalConfig())


def test_smollm2_ablation_is_its_base_with_the_math_stage_spent_on_joint_rl():
    main, ablation = load_config(CONFIGS / "smollm2-135m.yaml"), load_config(CONFIGS / "smollm2-135m-no-math.yaml")
    assert ablation.stages == ["sft", "rl_joint"] and main.model.prompt_style == "instruct"
    assert ablation.rl_joint.steps == main.rl_math.steps + main.rl_joint.steps
    assert ablation.model_dump(exclude={"name", "stages", "rl_joint"}) == main.model_dump(
        exclude={"name", "stages", "rl_joint"}
    )
    assert ablation.rl_joint.model_dump(exclude={"steps"}) == main.rl_joint.model_dump(exclude={"steps"})


def test_ablation_spends_the_same_rl_steps_on_joint_rl():
    tiny, ablation = load_config(CONFIGS / "tiny.yaml"), load_config(CONFIGS / "tiny-no-math.yaml")
    assert ablation.stages == ["pretrain", "sft", "rl_joint"] and ablation.rl_math is None
    assert ablation.rl_joint.steps == tiny.rl_math.steps + tiny.rl_joint.steps
    same = ablation.model_dump(exclude={"name", "stages", "rl_math", "rl_joint"})
    assert same == tiny.model_dump(exclude={"name", "stages", "rl_math", "rl_joint"})
    assert ablation.rl_joint.model_dump(exclude={"steps"}) == tiny.rl_joint.model_dump(exclude={"steps"})


def test_a_listed_stage_needs_its_section(tmp_path):
    path = tmp_path / "c.yaml"
    text = (CONFIGS / "smoke.yaml").read_text()
    path.write_text(text[: text.index("rl_math:")] + text[text.index("rl_joint:") :])
    with pytest.raises(ConfigError, match="stage rl_math is listed in `stages` but has no `rl_math:` section"):
        load_config(path)


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text((CONFIGS / "smoke.yaml").read_text() + text)
    return path


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text((CONFIGS / "smoke.yaml").read_text().replace("  lr:", "  learning_rate:", 1))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value) and "learning_rate" in str(e.value) and "unknown key" in str(e.value)


def test_wrong_type_names_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text((CONFIGS / "smoke.yaml").read_text().replace("seed: 0", "seed: lots"))
    with pytest.raises(ConfigError, match="key `seed`"):
        load_config(path)


def test_unknown_domain_in_config_is_rejected(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text((CONFIGS / "smoke.yaml").read_text().replace("domains: [math]", "domains: [poetry]"))
    with pytest.raises(ConfigError, match="sft.domains.0"):
        load_config(path)


def test_missing_file_and_broken_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_every_key_is_described_and_the_reference_page_is_current():
    from mathfirst.config_docs import SECTIONS, reference_markdown

    for _, model in SECTIONS:
        assert all(f.description for f in model.model_fields.values()), model.__name__
    page = Path(__file__).parent.parent / "docs" / "config-reference.md"
    assert page.read_text() == reference_markdown(), "run: python -m mathfirst.config_docs > docs/config-reference.md"


def test_the_losses_table_in_the_dapo_page_is_current():
    from mathfirst.config_docs import LOSSES_PAGE, losses_markdown, with_losses_table
    from mathfirst.rl.loss_registry import LOSSES

    page = LOSSES_PAGE.read_text()
    assert page == with_losses_table(page), "run: python -m mathfirst.config_docs --write"
    assert [row.split()[1] for row in losses_markdown().splitlines()[2:]] == [f"`{n}`" for n in LOSSES]


def test_an_overlay_changes_only_what_it_names(tmp_path):
    (tmp_path / "base.yaml").write_text((CONFIGS / "smoke.yaml").read_text())
    (tmp_path / "over.yaml").write_text("base: base.yaml\nname: over\nrl_joint:\n  steps: 7\n")
    base, over = load_config(tmp_path / "base.yaml"), load_config(tmp_path / "over.yaml")
    assert (over.name, over.rl_joint.steps, over.rl_joint.group_size) == ("over", 7, base.rl_joint.group_size)
    assert over.model_dump(exclude={"name", "rl_joint"}) == base.model_dump(exclude={"name", "rl_joint"})
    (tmp_path / "bad.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match="config file not found: .*missing.yaml"):
        load_config(tmp_path / "bad.yaml")


def test_unknown_benchmarks_and_gym_tasks_fail_before_the_run_starts():
    from mathfirst.curriculum import check_inputs
    from mathfirst.data.loaders import DataError

    cfg = load_config(CONFIGS / "smoke.yaml")
    cfg.eval.benchmarks = ["gsm8k", "gpqa_diamond"]
    with pytest.raises(ConfigError, match="eval.benchmarks: gpqa_diamond is not shipped"):
        check_inputs(cfg)
    cfg = load_config(CONFIGS / "smollm2-135m.yaml")
    cfg.model.init = "tiny"  # no model folder needed for this check
    cfg.rl_joint.reasoning_gym.tasks["no_such_task"] = cfg.rl_joint.reasoning_gym.tasks["syllogism"]
    with pytest.raises(DataError, match="reasoning_gym has no task 'no_such_task'"):
        check_inputs(cfg)


def test_domains_all_is_every_domain():
    from mathfirst.config import EvalConfig, RLConfig
    from mathfirst.data.domains import DOMAIN_NAMES

    assert RLConfig(steps=1, domains="all").domains == list(DOMAIN_NAMES) == EvalConfig(domains="all").domains
    with pytest.raises(ValueError):
        RLConfig(steps=1, domains="every")

from pathlib import Path

import pytest

from mathfirst.config import ConfigError, load_config

CONFIGS = Path(__file__).parent.parent / "configs"


@pytest.mark.parametrize("name", ["tiny.yaml", "smoke.yaml"])
def test_presets_load(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.stages == ["pretrain", "sft"]
    assert cfg.sft.domains == ["math"]


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

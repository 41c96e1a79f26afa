"""Run configuration: pydantic models loaded from YAML presets in configs/."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mathfirst.data.schema import DOMAINS

STAGES = ("pretrain", "sft")


class ConfigError(Exception):
    """A user mistake in a config file: printed as one clear line, no traceback."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorldConfig(Strict):
    levels: list[int] = [1, 2, 3]
    heldout_per_domain: int = Field(100, gt=0)
    pretrain_skill_rate: float = Field(0.3, ge=0, le=1)
    pretrain_slip_rate: float = Field(0.2, ge=0, le=1)
    pretrain_corrected_share: float = Field(0.5, ge=0, le=1)
    sft_skill_rate: float = Field(1.0, ge=0, le=1)
    sft_slip_rate: float = Field(0.3, ge=0, le=1)
    sft_corrected_share: float = Field(1.0, ge=0, le=1)

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: list[int]) -> list[int]:
        if not v or any(level not in (1, 2, 3) for level in v):
            raise ValueError("levels must be a non-empty subset of [1, 2, 3]")
        return v


class ModelConfig(Strict):
    """Either a fresh tiny Qwen3 (`init: tiny`) or a path to any local HF causal-LM folder."""

    init: str = "tiny"
    vocab_size: int = Field(1024, ge=300)
    hidden_size: int = Field(128, gt=0)
    num_layers: int = Field(4, gt=0)
    num_heads: int = Field(4, gt=0)
    num_kv_heads: int = Field(2, gt=0)
    intermediate_size: int = Field(512, gt=0)
    max_seq_len: int = Field(512, gt=0)


class TrainConfig(Strict):
    """One supervised stage: pretraining (loss on all tokens) or SFT (loss on the response)."""

    steps: int = Field(gt=0)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(20, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    examples: int = Field(gt=0)
    loss_on_prompt: bool = False  # pretraining may also learn the questions; SFT learns responses only
    replay: float = Field(0.0, ge=0, lt=1)  # share of examples replayed from the pretraining mixture
    files: list[str] = []  # extra (prompt, response) rows from .jsonl/.parquet files, added to the generated ones
    save_every: int = Field(100, gt=0)
    log_every: int = Field(10, gt=0)
    domains: list[Literal[DOMAINS]] = list(DOMAINS)  # type: ignore[valid-type]


class EvalConfig(Strict):
    samples: int = Field(4, ge=0)  # k sampled responses per task for mean@k (0: greedy only)
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: int = Field(192, gt=0)
    batch_size: int = Field(64, gt=0)
    domains: list[Literal[DOMAINS]] = list(DOMAINS)  # type: ignore[valid-type]


class RunConfig(Strict):
    name: str = "run"
    seed: int = 0
    stages: list[Literal[STAGES]] = list(STAGES)  # type: ignore[valid-type]
    threads: int = Field(0, ge=0)  # torch threads; 0 = all cores
    world: WorldConfig = WorldConfig()
    model: ModelConfig = ModelConfig()
    pretrain: TrainConfig
    sft: TrainConfig
    eval: EvalConfig = EvalConfig()


def load_config(path: str | Path) -> RunConfig:
    """Load and validate a YAML config; raise ConfigError with one readable line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"key `{'.'.join(map(str, err['loc']))}`: {_reason(err)}" for err in e.errors())
        raise ConfigError(f"{path}: {problems}") from None


def _reason(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    return err["msg"]


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)

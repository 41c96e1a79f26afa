"""The config reference (docs/config-reference.md), generated from the pydantic models' field descriptions:
`python -m mathfirst.config_docs > docs/config-reference.md` (a test checks the page is current)."""

from __future__ import annotations

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from mathfirst.config import (
    EvalConfig,
    GymConfig,
    GymTask,
    LoraConfig,
    ModelConfig,
    RLConfig,
    RunConfig,
    SelfDistillConfig,
    TrainConfig,
    WorldConfig,
)

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("top level", RunConfig),
    ("`world:`", WorldConfig),
    ("`model:`", ModelConfig),
    ("`pretrain:` and `sft:`", TrainConfig),
    ("`sft.self_distill:`", SelfDistillConfig),
    ("`rl_math:` and `rl_joint:`", RLConfig),
    ("`lora:` (in `pretrain`, `sft`, `rl_*`)", LoraConfig),
    ("`eval:`", EvalConfig),
    ("`reasoning_gym:` (in `rl_*`, `eval` and `self_distill`)", GymConfig),
    ("each task under `reasoning_gym.tasks:`", GymTask),
]


def default_text(field) -> str:
    if field.default is PydanticUndefined:
        return "required"
    if isinstance(field.default, BaseModel):
        return "(section)"
    return f"`{field.default!r}`".replace("|", "\\|")


def reference_markdown() -> str:
    lines = ["# Config reference", "", "Generated from `mathfirst/config.py` by `python -m mathfirst.config_docs`.", ""]
    for title, model in SECTIONS:
        lines += [f"## {title}", "", "| key | default | what |", "|---|---|---|"]
        for name, field in model.model_fields.items():
            what = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{name}` | {default_text(field)} | {what} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_markdown(), end="")

"""Docs tables generated from code: the config reference (docs/config-reference.md) from the pydantic models'
field descriptions, `python -m mathfirst.config_docs > docs/config-reference.md`, and the losses table of
docs/dapo.md from `LOSSES` (rl/loss_registry.py). `python -m mathfirst.config_docs --write` rewrites both in a
checkout; tests check that both are current."""

from __future__ import annotations

import sys
from pathlib import Path

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
from mathfirst.rl.loss_registry import KL_ESTIMATOR_NAMES, LOSS_AGG_NOTES, LOSSES

DOCS = Path(__file__).parent.parent / "docs"  # a checkout's docs/
LOSSES_PAGE = DOCS / "dapo.md"
LOSSES_BEGIN = "<!-- generated from LOSSES in rl/loss_registry.py: python -m mathfirst.config_docs --write -->"
LOSSES_END = "<!-- end of the generated losses table -->"

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


def number(x: float) -> str:
    """As the papers write it: 0.2, 1.0, and 3e-4 rather than 0.0003."""
    if x and abs(x) < 1e-3:
        mantissa, exponent = f"{x:e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"
    return repr(x)


def losses_markdown() -> str:
    """The table of the policy losses (docs/dapo.md), one row per `LOSSES` entry from its defaults and texts."""
    lines = [
        "| `loss` | objective | clip_low, clip_high | aggregation | advantages | KL |",
        "|---|---|---|---|---|---|",
    ]
    for name, spec in LOSSES.items():
        d: dict = spec.defaults
        loss = f"`{name}`" + (f" ({spec.origin})" if spec.origin else "")
        clip_low = number(d["clip_low"]) + (" (no lower bound)" if d["clip_low"] >= 1 else "")
        agg = d["loss_agg"] + (f" ({LOSS_AGG_NOTES[d['loss_agg']]})" if d["loss_agg"] in LOSS_AGG_NOTES else "")
        advantages = "group mean / std" if d["norm_adv_by_std"] else "group mean only"
        kl = f"{KL_ESTIMATOR_NAMES[d['kl_estimator']]}, {number(d['kl_coef'])}" if d.get("kl_coef") else "none"
        cells = [loss, spec.objective, f"{clip_low}, {number(d['clip_high'])}", agg, advantages, kl]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def with_losses_table(page: str) -> str:
    """`page` with the generated losses table between its markers."""
    head, rest = page.split(LOSSES_BEGIN + "\n", 1)
    _, tail = rest.split(LOSSES_END, 1)
    return f"{head}{LOSSES_BEGIN}\n{losses_markdown()}{LOSSES_END}{tail}"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        (DOCS / "config-reference.md").write_text(reference_markdown())
        LOSSES_PAGE.write_text(with_losses_table(LOSSES_PAGE.read_text()))
    else:
        print(reference_markdown(), end="")

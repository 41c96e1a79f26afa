"""A user's SFT and RL rows: (prompt, response) pairs and verl-schema prompts, with clear errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mathfirst.data.guru import mapped_if_guru
from mathfirst.data.rows import DataError, prompt_text, read_rows
from mathfirst.data.schema import DOMAINS


def load_sft_pairs(path: str | Path) -> list[tuple[str, str]]:
    """(prompt, response) pairs from rows with a `prompt` (text or chat messages) and a `response` column."""
    pairs = []
    for n, row in enumerate(read_rows(path), 1):
        for column in ("prompt", "response"):
            if column not in row:
                raise DataError(f"{path}: row {n} has no `{column}` column")
        prompt = prompt_text(row["prompt"])
        if prompt is None:
            raise DataError(f"{path}: row {n} column `prompt` must be text or a list of chat messages")
        if not isinstance(row["response"], str):
            raise DataError(f"{path}: row {n} column `response` must be text")
        pairs.append((prompt, row["response"]))
    if not pairs:
        raise DataError(f"{path}: no rows")
    return pairs


@dataclass(frozen=True)
class RLPrompt:
    """One RL prompt: what the policy sees and what the reward function needs (verl's row, flattened)."""

    data_source: str
    domain: str
    question: str
    ground_truth: str
    extra_info: dict = field(default_factory=dict, hash=False, compare=False)


def load_rl_prompts(path: str | Path) -> list[RLPrompt]:
    """Prompts from rows in verl's RL schema: `prompt`, `ability` (or `data_source`), `reward_model.ground_truth`.
    Guru rows (`data_source` like `codegen__leetcode2k`) are mapped onto the six domains first."""
    prompts = []
    for n, row in enumerate(read_rows(path), 1):
        row = mapped_if_guru(row, path, n)
        question = prompt_text(row.get("prompt"))
        if question is None:
            raise DataError(f"{path}: row {n} column `prompt` must be text or a list of chat messages")
        reward_model = row.get("reward_model")
        if not isinstance(reward_model, dict) or "ground_truth" not in reward_model:
            raise DataError(f"{path}: row {n} needs a `reward_model` column with a `ground_truth` field")
        source = str(row.get("data_source") or "")
        domain = str(row.get("ability") or source.split("/")[-1])
        if domain not in DOMAINS:
            raise DataError(f"{path}: row {n} has ability {domain!r}; expected one of {', '.join(DOMAINS)}")
        extra = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
        prompts.append(RLPrompt(source or f"file/{domain}", domain, question, str(reward_model["ground_truth"]), extra))
    if not prompts:
        raise DataError(f"{path}: no rows")
    return prompts

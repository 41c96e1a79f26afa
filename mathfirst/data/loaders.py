"""Read a user's data files (JSONL or parquet) with clear errors naming the file, row and column."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mathfirst.data.schema import DOMAINS


class DataError(Exception):
    """A data file that cannot be used: printed as one clear line."""


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a .jsonl or .parquet file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if path.suffix == ".parquet":
        try:
            return pq.read_table(path).to_pylist()
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{path}: not a readable parquet file ({e})") from None
    if path.suffix in (".jsonl", ".json"):
        rows = []
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: cannot read ({e})") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: line {n} is not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}: line {n} is not a JSON object")
            rows.append(row)
        return rows
    raise DataError(f"{path}: unsupported file type {path.suffix!r}; use .jsonl or .parquet")


def prompt_text(prompt: Any) -> str | None:
    """A prompt as text: a plain string, or the last user message of a chat."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(m, dict) and "content" in m for m in prompt):
        return [m for m in prompt if m.get("role", "user") == "user"][-1]["content"]
    return None


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
    from mathfirst.data.guru import mapped_if_guru

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

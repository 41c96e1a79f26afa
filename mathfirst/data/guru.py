"""LLM360's Guru RL data (guru-RL-92k parquet files) mapped onto the six domains and mathfirst's verifiers.

A Guru row is already in verl's RL schema; its domain is the `data_source` prefix (`math__deepscaler...`,
`codegen__leetcode2k`, `logic__zebra_puzzle_dataset`, `simulation__codeio`, `table__hitab`,
`stem__web_instruct`). Code ground truth is JSON test cases (`inputs`/`outputs`, or a `functional` test
script); STEM answers are free-form and go to the judge; the other domains use rule or math checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mathfirst.data.rows import DataError, prompt_text, read_rows

GURU_DOMAINS = {
    "math": "math",
    "codegen": "code",
    "stem": "stem",
    "simulation": "simulation",
    "logic": "logic",
    "table": "table",
}


def guru_domain(data_source: str) -> str | None:
    """Our domain for a Guru data_source such as `codegen__leetcode2k`, or None when it is not Guru's."""
    prefix, sep, _ = str(data_source).partition("__")
    return GURU_DOMAINS.get(prefix) if sep else None


def from_guru(row: dict[str, Any], path: str | Path, n: int) -> dict[str, Any]:
    """One Guru row as a verl row that `mathfirst.rewards.compute_score` routes to the right verifier."""
    for column in ("data_source", "prompt", "reward_model"):
        if column not in row:
            raise DataError(
                f"{path}: row {n} has no `{column}` column (Guru schema: data_source, prompt, reward_model)"
            )
    domain = guru_domain(row["data_source"])
    if domain is None:
        known = ", ".join(f"{p}__*" for p in GURU_DOMAINS)
        raise DataError(f"{path}: row {n} column `data_source` is {row['data_source']!r}; expected one of {known}")
    if prompt_text(row["prompt"]) is None:
        raise DataError(f"{path}: row {n} column `prompt` must be text or a list of chat messages")
    reward = row["reward_model"]
    if not isinstance(reward, dict) or "ground_truth" not in reward:
        raise DataError(f"{path}: row {n} column `reward_model` needs a `ground_truth` field")
    truth = reward["ground_truth"]
    if domain == "code":
        try:
            spec = json.loads(truth) if isinstance(truth, str) else truth
        except json.JSONDecodeError:
            raise DataError(f"{path}: row {n} column `reward_model.ground_truth` is not JSON test cases") from None
        if not isinstance(spec, dict) or not ({"inputs", "outputs"} <= set(spec) or "functional" in spec):
            raise DataError(f"{path}: row {n} code `reward_model.ground_truth` needs inputs/outputs or functional")
        truth = json.dumps(spec)
    extra = dict(row.get("extra_info") or {})
    extra["ability"] = domain
    if domain == "stem":
        extra["verifier"] = "judge"  # free-form answers: a judge model decides equivalence
        extra.setdefault("question", prompt_text(row["prompt"]))
    return {
        "data_source": row["data_source"],
        "prompt": row["prompt"] if isinstance(row["prompt"], list) else [{"role": "user", "content": row["prompt"]}],
        "ability": domain,
        "reward_model": {"style": reward.get("style", "rule"), "ground_truth": str(truth)},
        "extra_info": extra,
    }


def mapped_if_guru(row: dict[str, Any], path: str | Path, n: int) -> dict[str, Any]:
    """A Guru row mapped by `from_guru`; any other row unchanged."""
    return from_guru(row, path, n) if guru_domain(str(row.get("data_source") or "")) else row


def load_guru(path: str | Path) -> list[dict[str, Any]]:
    """Every row of a local Guru parquet (or JSONL) file, mapped; a clear error names the file, row and column."""
    rows = [from_guru(row, path, n) for n, row in enumerate(read_rows(path), 1)]
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows

"""Reading rows of data files (JSONL or parquet) with clear errors naming the file, row and column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


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

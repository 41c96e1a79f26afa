"""A user's SFT and RL rows (prompt-response pairs and verl-schema prompts) and model folders, checked whole before
a run writes anything: a malformed row or a missing part is a DataError, one line naming the file, the row and
the field."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from mathfirst.data.domains import DOMAIN_NAMES
from mathfirst.data.guru import mapped_if_guru
from mathfirst.data.rows import DataError, read_rows

ROLES = ("system", "user", "assistant")
CODE_TESTS = (("entry_point", "test"), ("inputs", "outputs"), ("functional",))  # what the code verifier reads
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def load_sft_pairs(path: str | Path) -> list[tuple[str, str]]:
    """(prompt, response) pairs from rows with a `prompt` (text or chat messages) and a `response` column."""
    pairs = []
    for n, row in enumerate(read_rows(path), 1):
        where = f"{path}: row {n}"
        for column in ("prompt", "response"):
            if column not in row:
                raise DataError(f"{where} has no `{column}` column")
        if not isinstance(row["response"], str):
            raise DataError(f"{where} column `response` must be text")
        pairs.append((prompt_of(row["prompt"], where), row["response"]))
    if not pairs:
        raise DataError(f"{path}: no rows")
    return pairs


def prompt_of(prompt: Any, where: str) -> str:
    """A row's prompt as text: plain text, or the last user message of a chat (each message a role and a text)."""
    if isinstance(prompt, str):
        return prompt
    if not isinstance(prompt, list) or not prompt:
        raise DataError(f"{where} column `prompt` must be text or a list of chat messages")
    for i, message in enumerate(prompt, 1):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise DataError(f"{where} column `prompt` message {i} needs a text `content`")
        if message.get("role", "user") not in ROLES:
            role = message.get("role")
            raise DataError(
                f"{where} column `prompt` message {i} has role {role!r}; expected one of {', '.join(ROLES)}"
            )
    users = [m["content"] for m in prompt if m.get("role", "user") == "user"]
    if not users:
        raise DataError(f"{where} column `prompt` has no user message")
    return users[-1]


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
    from mathfirst.rewards import route  # here, not above: the verifiers' imports are heavy for the CLI's start

    prompts = []
    for n, row in enumerate(read_rows(path), 1):
        where = f"{path}: row {n}"
        row = mapped_if_guru(row, path, n)
        question = prompt_of(row.get("prompt"), where)
        reward_model = row.get("reward_model")
        if not isinstance(reward_model, dict) or "ground_truth" not in reward_model:
            raise DataError(f"{where} needs a `reward_model` column with a `ground_truth` field")
        truth = reward_model["ground_truth"]
        if isinstance(truth, bool) or not isinstance(truth, (str, int, float)):
            raise DataError(f"{where} field `reward_model.ground_truth` must be text or a number")
        source = str(row.get("data_source") or "")
        domain = str(row.get("ability") or source.split("/")[-1])
        if domain not in DOMAIN_NAMES:
            raise DataError(f"{where} has ability {domain!r}; expected one of {', '.join(DOMAIN_NAMES)}")
        extra = row.get("extra_info")
        if extra is not None and not isinstance(extra, dict):
            raise DataError(f"{where} column `extra_info` must be an object")
        prompt = RLPrompt(source or f"file/{domain}", domain, question, str(truth), extra or {})
        if route(prompt.data_source, prompt.extra_info) == "code":
            check_code_test(prompt.ground_truth, where)
        prompts.append(prompt)
    if not prompts:
        raise DataError(f"{path}: no rows")
    return prompts


def check_code_test(truth: str, where: str) -> None:
    """A code row's ground truth must be the JSON test the code verifier runs, or every answer would score 0."""
    try:
        spec = json.loads(truth)
    except json.JSONDecodeError:
        spec = None
    if not isinstance(spec, dict) or not any(all(key in spec for key in keys) for keys in CODE_TESTS):
        tests = "JSON with entry_point and test, inputs and outputs, or functional"
        raise DataError(f"{where} field `reward_model.ground_truth` is not a code test: {tests}")


def check_model_folder(path: str | Path, option: str) -> None:
    """A Hugging Face model folder whole enough to load: config.json with a `model_type`, a tokenizer, and its
    weights (every shard an index lists, each safetensors file whole); else one line naming `option`, the
    folder and the part that is missing or damaged."""
    path = Path(path)
    config = path / "config.json"
    if not config.is_file():
        raise DataError(f"{option}: {path} is not a Hugging Face model folder (no config.json)")
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise DataError(f"{option}: {config} is not a JSON object") from None
    if not model_type:
        raise DataError(f"{option}: {config} has no `model_type`")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise DataError(f"{option}: {path} has no tokenizer ({', '.join(TOKENIZER_FILES)})")
    for weights in weight_files(path, option):
        if not weights.is_file():
            raise DataError(f"{option}: {weights} is missing")
        if weights.suffix == ".safetensors":
            try:
                with safe_open(str(weights), "pt"):
                    pass
            except SafetensorError as e:
                raise DataError(f"{option}: {weights} is damaged ({e})") from None


def weight_files(path: Path, option: str) -> list[Path]:
    """The weight files a model folder names: the shards of its index, or its one file."""
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (path / index).is_file():
            try:
                shards = json.loads((path / index).read_text())["weight_map"].values()
            except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
                raise DataError(f"{option}: {path / index} has no `weight_map`") from None
            return [path / shard for shard in sorted(set(shards))]
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (path / single).is_file():
            return [path / single]
    raise DataError(f"{option}: {path} has no weights (model.safetensors, pytorch_model.bin, or a sharded index)")

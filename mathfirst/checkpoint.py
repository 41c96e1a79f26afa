"""Crash-safe training checkpoints: an HF model folder plus optimizer state, swapped in atomically."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.model import load_model, save_model

STATE_FILE = "trainer_state.pt"


def save_checkpoint(
    dir: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, optimizer: torch.optim.Optimizer, step: int
) -> None:
    """Write `dir` so that a kill at any moment leaves either the old or the new checkpoint."""
    tmp, old = dir.with_name(dir.name + ".tmp"), dir.with_name(dir.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tokenizer, tmp)
    torch.save({"optimizer": optimizer.state_dict(), "step": step}, tmp / STATE_FILE)
    if dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.rename(dir, old)
    os.rename(tmp, dir)
    shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(dir: Path) -> Path | None:
    """The newest complete checkpoint: `dir`, or `dir.old` if a kill came between the two renames."""
    for candidate in (dir, dir.with_name(dir.name + ".old")):
        if (candidate / STATE_FILE).is_file():
            return candidate
    return None


def load_checkpoint(dir: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict]:
    model, tokenizer = load_model(dir)
    state = torch.load(dir / STATE_FILE, weights_only=True)
    return model, tokenizer, state


def resume(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    stage_dir: Path,
    optimizer_for: Callable[[PreTrainedModel], torch.optim.Optimizer],
    desc: str,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, torch.optim.Optimizer, int]:
    """Continue a stage from stage_dir/last when a checkpoint is there: (model, tokenizer, optimizer, first step)."""
    last = latest_checkpoint(stage_dir / "last")
    if last is None:
        return model, tokenizer, optimizer_for(model), 0
    model, tokenizer, state = load_checkpoint(last)
    optimizer = optimizer_for(model)
    optimizer.load_state_dict(state["optimizer"])
    tqdm.write(f"{desc}: resumed from step {state['step']}")
    return model, tokenizer, optimizer, state["step"]


def write_json_atomic(path: Path, data: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)

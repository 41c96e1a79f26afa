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

from mathfirst.lora import ADAPTER_FILE, has_lora, load_adapter, save_adapter
from mathfirst.model import load_model, save_model

STATE_FILE = "trainer_state.pt"


def save_checkpoint(
    dir: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, optimizer: torch.optim.Optimizer, step: int
) -> None:
    """Write `dir` so that a kill at any moment leaves either the old or the new checkpoint. A LoRA stage saves
    its adapters only (its frozen base is the stage's starting point)."""
    tmp, old = dir.with_name(dir.name + ".tmp"), dir.with_name(dir.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    if has_lora(model):
        save_adapter(model, tmp)
        tokenizer.save_pretrained(tmp)
    else:
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


def resume(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    stage_dir: Path,
    optimizer_for: Callable[[PreTrainedModel], torch.optim.Optimizer],
    desc: str,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, torch.optim.Optimizer, int]:
    """Continue a stage from stage_dir/last when a checkpoint is there: (model, tokenizer, optimizer, first step).
    A LoRA model gets its saved adapters back; any other model is replaced by the saved one."""
    last = latest_checkpoint(stage_dir / "last")
    if last is None:
        return model, tokenizer, optimizer_for(model), 0
    if (last / ADAPTER_FILE).is_file() != has_lora(model):
        raise ValueError(f"{last}: the checkpoint and this stage's `lora` setting disagree; use a new --out")
    if has_lora(model):
        load_adapter(model, last)
    else:
        model, tokenizer = load_model(last)
    state = torch.load(last / STATE_FILE, weights_only=True)
    optimizer = optimizer_for(model)
    optimizer.load_state_dict(state["optimizer"])
    tqdm.write(f"{desc}: resumed from step {state['step']}")
    return model, tokenizer, optimizer, state["step"]


def write_json_atomic(path: Path, data: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)

"""Crash-safe training checkpoints: an HF model folder plus optimizer state, written beside the last one, flushed
to the disk (files, then folders) and swapped in by renames. A manifest of every file's size, written last, lets
a resume tell a whole checkpoint from a damaged one. A full disk while saving, or a damaged checkpoint with
nothing to fall back to, stops the run with one line (both are DataErrors, which the CLI prints so)."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.data.rows import DataError
from mathfirst.model import load_model, save_model
from mathfirst.train.lora import ADAPTER_FILE, has_lora, load_adapter, save_adapter

STATE_FILE = "trainer_state.pt"
MANIFEST = "manifest.json"  # {"files": {name: bytes}}, written once every other file is on the disk


class DiskFull(DataError):
    """The disk filled while the run wrote; what it had written before is intact."""


class CheckpointDamaged(DataError):
    """A checkpoint whose files are not whole, and no earlier one to resume from."""


def save_checkpoint(
    dir: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, optimizer: torch.optim.Optimizer, step: int
) -> None:
    """Write `dir` so that a kill, a power cut or a full disk at any moment leaves the old or the new checkpoint,
    whole. A LoRA stage saves its adapters only (its frozen base is the stage's starting point)."""
    tmp, old = dir.with_name(dir.name + ".tmp"), dir.with_name(dir.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if has_lora(model):
            save_adapter(model, tmp)
            tokenizer.save_pretrained(tmp)
        else:
            save_model(model, tokenizer, tmp)
        with open(tmp / STATE_FILE, "wb") as f:  # a file object: a full disk then surfaces as an OSError
            torch.save({"optimizer": optimizer.state_dict(), "step": step}, f)
        seal(tmp)
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if disk_full(e):
            raise DiskFull(
                f"the disk is full: the checkpoint of step {step} could not be written to {tmp}; the last one, "
                f"{dir}, is intact. Free some space, then run again with --resume"
            ) from None
        raise
    if dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.rename(dir, old)
    os.rename(tmp, dir)
    fsync(dir.parent)
    shutil.rmtree(old, ignore_errors=True)


def seal(folder: Path) -> None:
    """Flush every file of `folder` to the disk, then write its manifest, then flush the folder itself."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    for path in files:
        fsync(path)
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        fsync(path)
    sizes = {str(p.relative_to(folder)): p.stat().st_size for p in files}
    with open(folder / MANIFEST, "w") as f:
        json.dump({"files": sizes}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    fsync(folder)


def fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_full(e: BaseException) -> bool:
    """Whether `e`, or an error that led to it, says the disk (or the user's quota) is full."""
    while e is not None:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(e):  # safetensors' errors carry the OS error as text
            return True
        e = e.__cause__ or e.__context__
    return False


def checkpoints(dir: Path) -> list[Path]:
    """The checkpoints there are, newest first (whole or not): `dir`, and `dir.old` if a kill came between the
    two renames."""
    both = (dir, dir.with_name(dir.name + ".old"))
    return [c for c in both if (c / STATE_FILE).is_file() or (c / MANIFEST).is_file()]


def latest_checkpoint(dir: Path) -> Path | None:
    """The newest checkpoint, whole or not."""
    return next(iter(checkpoints(dir)), None)


def damage(checkpoint: Path) -> str | None:
    """What is wrong with a checkpoint's files ("model.safetensors has 1,000 bytes of 9,000"), or None when
    every file its manifest lists is there at its size and every weights file reads as whole."""
    manifest = checkpoint / MANIFEST
    if manifest.is_file():
        try:
            sizes = json.loads(manifest.read_text())["files"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return f"{manifest} is not a manifest"
        for name, size in sizes.items():
            path = checkpoint / name
            if not path.is_file():
                return f"{path} is missing"
            if path.stat().st_size != size:
                return f"{path} has {path.stat().st_size:,} bytes of {size:,}"
    elif not (checkpoint / STATE_FILE).is_file():
        return f"{checkpoint / STATE_FILE} is missing"
    for path in sorted(checkpoint.glob("*.safetensors")):  # checkpoints written before manifests, too
        try:
            with safe_open(str(path), "pt"):
                pass
        except SafetensorError as e:
            return f"{path} is damaged ({e})"
    return None


def usable_checkpoint(dir: Path, desc: str) -> Path | None:
    """The newest whole checkpoint (`dir`, else `dir.old`, said in one line); None when there is none to resume.
    A damaged one with no whole one behind it stops the run, naming the file and what to do."""
    problems = []
    for candidate in checkpoints(dir):
        problem = damage(candidate)
        if problem is None:
            if problems:
                tqdm.write(f"{desc}: {problems[0]}; resuming from the previous checkpoint, {candidate}")
            return candidate
        problems.append(problem)
    if not problems:
        return None
    raise CheckpointDamaged(
        f"{desc}: cannot resume: {problems[0]}. Delete {dir} to train {desc} again from its start (finished "
        "stages are kept), or put the file back"
    )


def resume(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    stage_dir: Path,
    optimizer_for: Callable[[PreTrainedModel], torch.optim.Optimizer],
    desc: str,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, torch.optim.Optimizer, int]:
    """Continue a stage from stage_dir/last when a checkpoint is there: (model, tokenizer, optimizer, first step).
    A LoRA model gets its saved adapters back; any other model is replaced by the saved one."""
    last = usable_checkpoint(stage_dir / "last", desc)
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
    """Replace `path` with `data` as JSON, whole or not at all."""
    write_text_atomic(path, json.dumps(data, indent=2))


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text`, whole or not at all (flushed before the rename); a full disk leaves the old
    file and stops the run with one line."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if disk_full(e):
            raise DiskFull(f"the disk is full: {path} could not be written; free some space, then run again") from None
        raise
    os.replace(tmp, path)
    fsync(path.parent)

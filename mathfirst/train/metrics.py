"""Training metrics: append-only JSONL (always; safe to resume: lines past the resumed step are dropped, the file
replaced whole), and the same names to TensorBoard (`<stage>/tensorboard/`) and Weights & Biases (offline unless
WANDB_MODE says otherwise) when the config's `log:` asks for them. A full disk stops the run with one line."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from mathfirst.train.checkpoint import DiskFull, disk_full, write_text_atomic


class MetricsLog:
    def __init__(self, path: Path, resume_step: int = 0, loggers: tuple[str, ...] = ()):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(path) if r.get("step", 0) <= resume_step] if resume_step else []
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))
        self.tensorboard = self.wandb = None
        if "tensorboard" in loggers:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(
                path.parent / "tensorboard", purge_step=resume_step + 1 if resume_step else None
            )
        if "wandb" in loggers:
            import wandb

            os.environ.setdefault("WANDB_MODE", "offline")  # no network needed; `wandb sync` uploads later
            run_id = hashlib.sha1(str(path.parent.resolve()).encode()).hexdigest()[:16]  # a resumed stage continues it
            name = f"{path.parent.parent.name}/{path.parent.name}"  # run/stage
            self.wandb = wandb.init(project="mathfirst", name=name, dir=path.parent, id=run_id, resume="allow")

    def log(self, step: int, **values: Any) -> None:
        record = {"step": step, "time": round(time.time(), 3), **values}
        try:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            if disk_full(e):
                raise DiskFull(
                    f"the disk is full: {self.path} could not be written at step {step}; the last checkpoint is "
                    "intact. Free some space, then run again with --resume"
                ) from None
            raise
        scalars = {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self.tensorboard is not None:
            for key, value in scalars.items():
                self.tensorboard.add_scalar(key, value, step)
            self.tensorboard.flush()
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb is not None:
            import wandb

            self.wandb.finish()
            wandb.teardown()  # finish() may return before wandb's service has written the run file; this waits


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line (a line cut short by a kill is skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records

"""Learning curves: an RL stage's held-out accuracy every `eval_every` steps, appended to <stage>/curve.jsonl
(resumable: points past the resumed step are dropped and measured again)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.config import RLConfig, RunConfig
from mathfirst.data.assemble import heldout_prompts
from mathfirst.data.loaders import RLPrompt
from mathfirst.eval.heldout import Generation, score_domain
from mathfirst.metrics import read_metrics

CURVE_FILE = "curve.jsonl"
CURVE_KEYS = ("greedy", "greedy_ci95", "format", "acc_in_format")  # what each point keeps per domain


def spread(tasks: list[RLPrompt], n: int | None) -> list[RLPrompt]:
    """`n` tasks evenly spaced over the list (held-out lists are ordered by task kind, so a prefix would not be
    a fair mix); all of them when `n` is None or larger."""
    if n is None or n >= len(tasks):
        return tasks
    return [tasks[i * len(tasks) // n] for i in range(n)]


class LearningCurve:
    """Measures and records the held-out accuracy of a stage's model at chosen steps."""

    def __init__(self, cfg: RunConfig, rcfg: RLConfig, stage_dir: Path, resume_step: int = 0):
        self.every, self.steps = rcfg.eval_every, rcfg.steps
        self.tasks = {d: spread(heldout_prompts(cfg, d), rcfg.eval_tasks) for d in cfg.eval.domains}
        self.gen = Generation(
            cfg.eval.max_new_tokens, cfg.eval.batch_size, cfg.seed, rcfg.eval_samples, cfg.eval.temperature
        )
        self.path = stage_dir / CURVE_FILE
        self.points = [p for p in read_metrics(self.path) if p["step"] <= resume_step]
        self.path.write_text("".join(json.dumps(p) + "\n" for p in self.points))

    def due(self, step: int) -> bool:
        """Before the first step, every `eval_every` steps and after the last; once per step."""
        wanted = step == 0 or step == self.steps or step % self.every == 0
        return wanted and all(p["step"] != step for p in self.points)

    def measure(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, step: int, train_s: float) -> dict:
        """Evaluate every domain's subset, append the point and return it."""
        t0 = time.perf_counter()
        domains = {}
        for domain, tasks in self.tasks.items():
            result, _ = score_domain(model, tokenizer, tasks, domain, self.gen, f"step {step}")
            keys = [*CURVE_KEYS, *(k for k in result if k.startswith("mean@"))]
            domains[domain] = {k: result[k] for k in keys if result.get(k) is not None} | {"n": result["n"]}
        point = {"step": step, "train_s": round(train_s, 2), "eval_s": round(time.perf_counter() - t0, 2)}
        point["domains"] = domains
        self.points.append(point)
        with self.path.open("a") as f:
            f.write(json.dumps(point) + "\n")
        return point


def scalars(point: dict) -> dict[str, float]:
    """A point's accuracies as flat metric names (heldout_<domain>, heldout_<domain>_mean@k)."""
    out = {}
    for domain, r in point["domains"].items():
        out[f"heldout_{domain}"] = r["greedy"]
        out |= {f"heldout_{domain}_{k}": v for k, v in r.items() if k.startswith("mean@") and "ci95" not in k}
    return out


def train_seconds(stage_dir: Path, resume_step: int) -> float:
    """The stage's sampling and update time up to `resume_step` (from its metrics), to continue the clock."""
    rows = read_metrics(stage_dir / "metrics.jsonl")
    return sum(r.get("step_s", 0.0) for r in rows if 0 < r["step"] <= resume_step)


def read_curve(stage_dir: Path) -> list[dict]:
    return read_metrics(stage_dir / CURVE_FILE)

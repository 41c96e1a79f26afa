"""Learning curves: an RL stage's held-out accuracy every `eval_every` steps, appended to <stage>/curve.jsonl
(resumable: points past the resumed step are dropped and measured again)."""

from __future__ import annotations

import time
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.config import RLConfig, RunConfig
from mathfirst.data.assemble import heldout_prompts
from mathfirst.data.loaders import RLPrompt
from mathfirst.eval.heldout import Generation, score_domain
from mathfirst.train.metrics import MetricsLog, read_metrics

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
        self.log = MetricsLog(stage_dir / CURVE_FILE, resume_step)  # drops the points past the resumed step
        self.measured = {p["step"] for p in read_metrics(self.log.path)}

    def due(self, step: int) -> bool:
        """Before the first step, every `eval_every` steps and after the last; once per step."""
        wanted = step == 0 or step == self.steps or step % self.every == 0
        return wanted and step not in self.measured

    def measure(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, step: int, train_s: float) -> dict:
        """Evaluate every domain's subset, append the point and return it."""
        t0 = time.perf_counter()
        domains = {}
        for domain, tasks in self.tasks.items():
            result, _ = score_domain(model, tokenizer, tasks, domain, self.gen, f"step {step}")
            keys = [*CURVE_KEYS, *(k for k in result if k.startswith("mean@"))]
            domains[domain] = {k: result[k] for k in keys if result.get(k) is not None} | {"n": result["n"]}
        point = {"train_s": round(train_s, 2), "eval_s": round(time.perf_counter() - t0, 2), "domains": domains}
        self.log.log(step, **point)
        self.measured.add(step)
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

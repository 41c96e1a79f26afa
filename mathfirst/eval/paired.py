"""Differences between two evaluations of the same held-out tasks (two stages of a run, or a run's final
stage and its ablation's), paired task by task from each stage's samples.jsonl, with bootstrap intervals."""

from __future__ import annotations

from pathlib import Path

from mathfirst.config import STAGES
from mathfirst.eval.stats import paired_difference
from mathfirst.study.skills import read_samples

NON_MATH = "mean of the non-math domains"
COMPARED = tuple(s for s in STAGES if s != "pretrain")  # the curriculum's stages; pretraining is a tiny-only warm-up


def evaluated_stages(run: Path) -> list[str]:
    """The run's compared stages that have been evaluated (have a samples.jsonl), in order."""
    return [s for s in COMPARED if (run / s / "samples.jsonl").is_file()]


def task_scores(stage_dir: Path) -> dict[str, dict[str, list]]:
    """Per domain, in task order: each task's question, greedy score, mean score over its samples, whether its
    greedy response shows each skill (key: the skill's name) and the share of its samples that do (key:
    `SKILL_sampled`). samples.jsonl holds each task's greedy row followed by its sampled rows."""
    out: dict[str, dict[str, list]] = {}
    for row in read_samples(stage_dir / "samples.jsonl"):
        d = out.setdefault(row["domain"], {"question": [], "greedy": [], "samples": [], "sampled_skills": []})
        if row["kind"] == "greedy":
            d["question"].append(row["question"])
            d["greedy"].append(row["score"])
            d["samples"].append([])
            d["sampled_skills"].append([])
            for skill, shown in (row.get("skills") or {}).items():
                d.setdefault(skill, []).append(float(shown))
        elif d["samples"]:
            d["samples"][-1].append(row["score"])
            d["sampled_skills"][-1].append(row.get("skills") or {})
    for d in out.values():
        d["mean"] = [sum(s) / len(s) if s else None for s in d.pop("samples")]
        per_task = d.pop("sampled_skills")
        for skill in {k for task in per_task for row in task for k in row}:
            d[f"{skill}_sampled"] = [sum(r[skill] for r in t) / len(t) if t else None for t in per_task]
    return out


def paired(before: dict, after: dict, key: str) -> dict[str, tuple[list, list]]:
    """(before, after) per-task values of `key` for each domain both evaluated on the same task list."""
    return {
        domain: (before[domain][key], after[domain][key])
        for domain in before
        if domain in after
        and before[domain]["question"] == after[domain]["question"]
        and key in before[domain]
        and key in after[domain]
        and None not in before[domain][key] + after[domain][key]
    }


def compare(before: dict, after: dict, key: str) -> dict[str, dict]:
    """after - before per domain shared by both (on identical task lists), and over the non-math domains;
    `key` is greedy, mean or a skill."""
    pairs = paired(before, after, key)
    out = {domain: paired_difference([p]) for domain, p in pairs.items()}
    others = [p for domain, p in pairs.items() if domain != "math"]
    if others:
        out[NON_MATH] = paired_difference(others)
    return out


def differences(runs: list[Path]) -> dict:
    """Stage-to-stage differences of the first run, and final-stage differences of it against each other run."""
    stages = evaluated_stages(runs[0])
    scores = {s: task_scores(runs[0] / s) for s in stages}
    steps = list(zip(stages, stages[1:])) + ([(stages[0], stages[-1])] if len(stages) > 2 else [])
    out: dict = {"stages": {}, "versus": {}}
    for key in ("greedy", "mean"):
        out["stages"][key] = {f"{a} → {b}": compare(scores[a], scores[b], key) for a, b in steps}
        for other in runs[1:]:
            final = evaluated_stages(other)[-1]
            versus = out["versus"].setdefault(other.name, {"stage": final})
            versus[key] = compare(task_scores(other / final), scores[stages[-1]], key)
    return out

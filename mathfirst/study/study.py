"""`mathfirst study`: the curriculum and its ablation over several seeds (and, optionally, several policy
losses), then the paper's claims tested on them: each effect averaged over seeds, its 95% interval from a
bootstrap over seeds and tasks, and a plain verdict. Resumable as a whole: run the same command again."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from mathfirst.config import RL_STAGES, SCHEDULES, ConfigError, RunConfig, load_config
from mathfirst.data.traces import CHECK_OUTCOMES, check_outcome
from mathfirst.eval.curve import read_curve
from mathfirst.eval.paired import NON_MATH, evaluated_stages, paired, task_scores
from mathfirst.eval.stats import paired_difference_over_seeds, unpaired_difference, wilson
from mathfirst.study.skills import read_samples

ADAPTIVE_SCHEDULES = SCHEDULES[1:]  # study arms beside the fixed curriculum
MIN_EFFECT = 0.02  # an interval wholly below +2 points rules the claimed effect out ("not supported")
SKILLS = ("verification", "backtracking")
console = Console()


@dataclass
class Claim:
    name: str
    text: str
    before: tuple[str, str]  # (run, stage): run is "curriculum" or "ablation", stage a stage or "final"
    after: tuple[str, str]
    domains: str  # "math" or "others"
    key: str = "greedy"  # greedy, mean (mean@k), or a skill


ACCURACY_CLAIMS = [
    Claim("math_rl_raises_math", "math RL raises math", ("curriculum", "sft"), ("curriculum", "rl_math"), "math"),
    Claim(
        "joint_rl_raises_others",
        "joint RL then raises the other domains",
        ("curriculum", "rl_math"),
        ("curriculum", "rl_joint"),
        "others",
    ),  # fmt: skip
    Claim(
        "math_stage_helps_others",
        "removing the math stage hurts the other domains (at equal RL steps)",
        ("ablation", "final"),
        ("curriculum", "final"),
        "others",
    ),  # fmt: skip
]
CLAIMS = (
    ACCURACY_CLAIMS
    + [  # the same on sampled accuracy (mean@k at the eval temperature), as the paper reports its scores
        Claim(f"{c.name}_mean_at_k", f"{c.text}, mean@k", c.before, c.after, c.domains, "mean") for c in ACCURACY_CLAIMS
    ]
    + [
        Claim(
            f"{skill}_transfers{suffix}",
            f"math RL raises {skill} outside math (SFT to math RL){text}",
            ("curriculum", "sft"),
            ("curriculum", "rl_math"),
            "others",
            skill + suffix,
        )  # fmt: skip
        for suffix, text in (("", ""), ("_sampled", ", share of samples"))
        for skill in SKILLS
    ]
    + [
        Claim(
            f"{skill}_grows",
            f"{skill} grows outside math (SFT to joint RL)",
            ("curriculum", "sft"),
            ("curriculum", "rl_joint"),
            "others",
            skill,
        )  # fmt: skip
        for skill in SKILLS
    ]
)


def loss_changes(cfg: RunConfig, loss: str | None) -> dict:
    return {stage: {"loss": loss} for stage in RL_STAGES if loss and getattr(cfg, stage) is not None}


def schedule_changes(cfg: RunConfig, schedule: str | None) -> dict:
    """`schedule` on every RL stage that draws from more than one domain (a math-only stage has nothing to
    schedule, so the arm reuses the curriculum's)."""
    stages = [s for s in RL_STAGES if getattr(cfg, s) is not None and len(getattr(cfg, s).domains) > 1]
    return {stage: {"schedule": schedule} for stage in stages if schedule}


def schedule_arm(schedule: str) -> str:
    return f"schedule-{schedule}"


def run_study(
    config: Path, ablation: Path, seeds: int, losses: list[str | None], out: Path, schedules: list[str] = ()
) -> dict:
    """Run every (loss, seed) curriculum, ablation and adaptive-schedule arm not yet finished, then write the
    study report."""
    from mathfirst.curriculum import run_curriculum

    base, base_ablation = load_config(config), load_config(ablation)
    plan = {"config": str(config), "ablation": str(ablation), "seeds": seeds, "losses": losses}
    plan |= {"schedules": list(schedules)} if schedules else {}  # a study saved before schedules still resumes
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "study.json"
    if saved.is_file() and json.loads(saved.read_text()).get("plan", plan) != plan:
        raise ConfigError(f"{out} holds a study with other settings; use a new --out")
    saved.write_text(json.dumps({"plan": plan}, indent=1))
    for loss in losses:
        for seed in range(seeds):
            folder = group_dir(out, loss) / f"seed{seed}"
            shared = group_dir(out, losses[0]) / f"seed{seed}" / "curriculum"
            arms = [("curriculum", config, base, None), ("ablation", ablation, base_ablation, None)]
            arms += [(schedule_arm(x), config, base, x) for x in schedules]
            for name, path, cfg, schedule in arms:
                changes = {"seed": seed} | loss_changes(cfg, loss) | schedule_changes(cfg, schedule)
                run_cfg = load_config(path, changes)
                run_dir = folder / name
                own_curriculum = folder / "curriculum"  # a schedule arm shares its seed's stages up to rl_math
                shared_run = own_curriculum if schedule else shared
                reuse = shared_run if shared_run != run_dir and shared_run.is_dir() else None
                console.rule(f"study: {loss or 'configured loss'}, seed {seed}, {name}")
                if (run_dir / "config.yaml").is_file():
                    run_curriculum(None, run_dir, resume=True)
                else:
                    run_curriculum(run_cfg, run_dir, resume=False, reuse=reuse)
    return write_study(out, seeds, losses, list(schedules))


def group_dir(out: Path, loss: str | None) -> Path:
    return out / loss if loss else out


def side_scores(seed_dir: Path, side: tuple[str, str]) -> dict:
    """Per-task scores of one side of a comparison: (run, stage), stage "final" for the run's last."""
    run = seed_dir / side[0]
    return task_scores(run / (evaluated_stages(run)[-1] if side[1] == "final" else side[1]))


def strata(claim: Claim, seed_dir: Path) -> list[tuple[list[float], list[float]]]:
    """The claim's (before, after) per-task values in each of its domains, for one seed."""
    pairs = paired(side_scores(seed_dir, claim.before), side_scores(seed_dir, claim.after), claim.key)
    if claim.domains == "math":
        return [pairs["math"]] if "math" in pairs else []
    return [p for d, p in pairs.items() if d != "math"]


def verdict(effect: dict) -> str:
    lo, hi = effect["ci95"]
    if lo > 0:
        return "supported"
    if hi < MIN_EFFECT:
        return "not supported"
    return "cannot tell at this power"


def schedule_claims(schedules: list[str]) -> list[Claim]:
    """Per adaptive schedule: does it beat the fixed curriculum at the end, outside math and in math?"""
    return [
        Claim(
            f"{x}_schedule_beats_fixed{suffix}",
            f"the {x} schedule beats the fixed curriculum{text}",
            ("curriculum", "final"),
            (schedule_arm(x), "final"),
            domains,
        )  # fmt: skip
        for x in schedules
        for suffix, text, domains in (("", " on the other domains", "others"), ("_math", " in math", "math"))
    ]


def judged_claims(group: Path, seeds: int, schedules: list[str] = ()) -> dict:
    out = {}
    for claim in CLAIMS + schedule_claims(list(schedules)):
        per_seed = [strata(claim, group / f"seed{s}") for s in range(seeds)]
        if not all(per_seed):
            continue
        effect = paired_difference_over_seeds(per_seed)
        out[claim.name] = {"claim": claim.text, **effect, "verdict": verdict(effect)}
    return out


def by_domain(group: Path, seeds: int, before: tuple[str, str], after: tuple[str, str]) -> dict:
    """Per-domain greedy effects (and the non-math mean) pooled over seeds."""
    per_seed = [
        paired(side_scores(group / f"seed{s}", before), side_scores(group / f"seed{s}", after), "greedy")
        for s in range(seeds)
    ]
    domains = [d for d in per_seed[0] if all(d in p for p in per_seed)]
    out = {d: paired_difference_over_seeds([[p[d]] for p in per_seed]) for d in domains}
    others = [d for d in domains if d != "math"]
    if others:
        out[NON_MATH] = paired_difference_over_seeds([[p[d] for d in others] for p in per_seed])
    return out


def write_study(out: Path, seeds: int, losses: list[str | None], schedules: list[str] = ()) -> dict:
    """study.json, study.md and the figures from the finished runs."""
    from mathfirst.study.report import write_study_report

    result = {"plan": json.loads((out / "study.json").read_text())["plan"], "groups": {}}
    for loss in losses:
        group = group_dir(out, loss)
        responses = {s: evaluated_responses(group, seeds, s) for s in evaluated_stages(group / "seed0" / "curriculum")}
        result["groups"][loss or "configured"] = {
            "claims": judged_claims(group, seeds, schedules),
            "curriculum_minus_ablation": by_domain(group, seeds, ("ablation", "final"), ("curriculum", "final")),
            "accuracy": accuracy_by_stage(group, seeds),
            "skills": skills_by_stage(group, seeds),
            "payoff": payoff_by_stage(responses),
            "checks": check_outcomes_by_stage(responses),
            "time_to_fixed": {x: time_to_fixed(group, seeds, schedule_arm(x)) for x in schedules},
            "schedule_curves": schedule_curves(group, seeds, schedules) if schedules else {},
        }
    (out / "study.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    write_study_report(out, result)
    return result


def accuracy_by_stage(group: Path, seeds: int, key: str = "greedy") -> dict:
    """Mean greedy accuracy per stage and domain over seeds, with a bootstrap interval over seeds and tasks."""
    return level_by_stage(group, seeds, lambda d: d[key])


def skills_by_stage(group: Path, seeds: int) -> dict:
    """Share of greedy responses showing each skill outside math, per stage, over seeds and tasks."""
    return {
        skill: level_by_stage(group, seeds, lambda d, s=skill: d.get(s), others_only=True)["others"] for skill in SKILLS
    }


def evaluated_responses(group: Path, seeds: int, stage: str) -> list[dict]:
    """A stage's sampled responses over seeds (its greedy ones where the eval samples none)."""
    rows = [r for s in range(seeds) for r in read_samples(group / f"seed{s}" / "curriculum" / stage / "samples.jsonl")]
    kind = "sample" if any(r["kind"] == "sample" for r in rows) else "greedy"
    return [r for r in rows if r["kind"] == kind and r.get("skills")]


def in_scope(rows: list[dict], scope: str) -> list[dict]:
    return [r for r in rows if (r["domain"] == "math") == (scope == "math")]


def payoff_by_stage(responses: dict[str, list[dict]]) -> dict:
    """Per skill, in math and outside it, per stage: the accuracy of the responses showing the move minus that
    of those without it, pooled over seeds. A move can only be reinforced by RL where it pays off.
    Observational: a task that draws a move may be harder."""
    out: dict = {skill: {"math": {}, "others": {}} for skill in SKILLS}
    for stage, rows in responses.items():
        for skill, scope in ((k, s) for k in SKILLS for s in ("math", "others")):
            chosen = in_scope(rows, scope)
            shown = [r["score"] for r in chosen if r["skills"][skill]]
            hidden = [r["score"] for r in chosen if not r["skills"][skill]]
            out[skill][scope][stage] = unpaired_difference(shown, hidden)
    return out


def check_outcomes_by_stage(responses: dict[str, list[dict]]) -> dict:
    """Per stage, in math and outside it: the accuracy (Wilson interval, count) of the responses whose checks
    all pass, of those in which a check fails (then a redo can repair the answer), and of those without one."""
    out: dict = {"math": {}, "others": {}}
    for stage, rows in responses.items():
        for scope in out:
            by_outcome: dict[str, list[float]] = {o: [] for o in CHECK_OUTCOMES}
            for r in in_scope(rows, scope):
                by_outcome[check_outcome(r["response"])].append(r["score"])
            out[scope][stage] = {o: share(v) for o, v in by_outcome.items()}
    return out


def share(scores: list[float]) -> dict:
    solved = round(sum(scores))
    return {"acc": round(solved / len(scores), 4) if scores else None, "ci95": list(wilson(solved, len(scores))),
            "n": len(scores)}  # fmt: skip


def level_by_stage(group: Path, seeds: int, values, others_only: bool = False) -> dict:
    """A level (not a difference) with its interval: the paired machinery against a zero baseline."""
    stages = evaluated_stages(group / "seed0" / "curriculum")
    out: dict = {}
    for stage in stages:
        per_seed = [task_scores(group / f"seed{s}" / "curriculum" / stage) for s in range(seeds)]
        domains = [d for d in per_seed[0] if all(d in p and values(p[d]) is not None for p in per_seed)]
        if others_only:
            strata = [[([0.0] * len(values(p[d])), values(p[d])) for d in domains if d != "math"] for p in per_seed]
            out.setdefault("others", {})[stage] = paired_difference_over_seeds(strata)
            continue
        for d in domains:
            strata = [[([0.0] * len(values(p[d])), values(p[d]))] for p in per_seed]
            out.setdefault(d, {})[stage] = paired_difference_over_seeds(strata)
    return out


def non_math_curve(run_stage: Path) -> list[tuple[float, float]]:
    """(training seconds, mean greedy accuracy outside math) at each learning-curve point of an RL stage."""
    points = []
    for p in read_curve(run_stage):
        others = [d["greedy"] for name, d in p["domains"].items() if name != "math"]
        if others:
            points.append((p["train_s"], sum(others) / len(others)))
    return points


def schedule_curves(group: Path, seeds: int, schedules: list[str], stage: str = "rl_joint") -> dict:
    """Per schedule (the curriculum's is `fixed`), each seed's non-math learning curve of `stage`."""
    arms = {"fixed": "curriculum"} | {x: schedule_arm(x) for x in schedules}
    return {x: [non_math_curve(group / f"seed{s}" / arm / stage) for s in range(seeds)] for x, arm in arms.items()}


def time_to_fixed(group: Path, seeds: int, arm: str, stage: str = "rl_joint") -> dict:
    """Per seed, the training seconds each run's `stage` took to first reach the fixed curriculum's final
    non-math accuracy on its learning curve (None: never), and the speed-up: the fixed runs' total time over
    the arm's (None unless the arm gets there on every seed)."""
    per_seed = []
    for s in range(seeds):
        fixed, adaptive = (non_math_curve(group / f"seed{s}" / run / stage) for run in ("curriculum", arm))
        if not fixed or not adaptive:
            return {}
        target = fixed[-1][1]
        first = [next((t for t, acc in curve if acc >= target), None) for curve in (fixed, adaptive)]
        per_seed.append({"target": round(target, 4), "fixed_s": first[0], "adaptive_s": first[1]})
    reached = [r for r in per_seed if r["adaptive_s"] is not None]
    speedup = (
        sum(r["fixed_s"] for r in per_seed) / sum(r["adaptive_s"] for r in reached)
        if len(reached) == len(per_seed) and sum(r["adaptive_s"] for r in reached) > 0
        else None
    )
    return {"per_seed": per_seed, "speedup": round(speedup, 2) if speedup else None}

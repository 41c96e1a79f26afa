"""study.md and its figures: the verdict on each claim, per-domain curriculum-minus-ablation effects, accuracy
and skill shares by stage, every number with its 95% interval over seeds and tasks (from study.json)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mathfirst.eval.report import Table, md_table, signed  # noqa: E402


def level(d: dict) -> str:
    lo, hi = d["ci95"]
    return f"{100 * d['diff']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def claims_table(claims: dict) -> Table:
    rows = [[c["claim"], signed(c), ", ".join(f"{100 * x:+.1f}" for x in c.get("per_seed", [])) or "–",
             c["verdict"]] for c in claims.values()]  # fmt: skip
    return Table(["claim", "effect (points, 95% interval)", "per seed", "verdict"], rows)


PAYOFF_CAPTION = (
    "Payoff of each move: the accuracy of sampled responses (greedy ones where the eval samples none) showing it "
    "minus that of those without it, in points, pooled over seeds (responses with / without it). Observational: "
    "a task that draws a move may be harder."
)


CHECKS_CAPTION = (
    "The model's own checks: the accuracy of sampled (or greedy) responses whose checks all pass, in which a "
    "check fails (`, not ...`: a redo may repair the answer), and without a check, in %, with 95% Wilson "
    "intervals that treat the responses as independent (responses)."
)


def checks_table(checks: dict) -> Table:
    stages = list(next(iter(checks.values())))
    rows = [[f"{scope}: {outcome}"] + [accuracy(checks[scope][s][outcome]) for s in stages]
            for scope in checks for outcome in next(iter(checks[scope].values()))]  # fmt: skip
    return Table(["domains: checks", *stages], rows)


def accuracy(d: dict) -> str:
    lo, hi = d["ci95"]
    return f"{100 * d['acc']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] ({d['n']})" if d["n"] else "– (0)"


def payoff_table(payoff: dict) -> Table:
    stages = list(next(iter(next(iter(payoff.values())).values())))
    rows = [[f"{skill}, {scope}"] + [with_counts(per_stage[s]) for s in stages]
            for skill, scopes in payoff.items() for scope, per_stage in scopes.items()]  # fmt: skip
    return Table(["move, domains", *stages], rows)


def with_counts(d: dict | None) -> str:
    return f"{signed(d)} ({d['n'][0]} / {d['n'][1]})" if d else "–"


def errorbars(ax, labels: list[str], series: dict[str, list[dict]], ylabel: str, percent_of_zero: bool) -> None:
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(labels))]
        mid = [100 * v["diff"] for v in values]
        err = [
            [m - 100 * v["ci95"][0] for m, v in zip(mid, values)],
            [100 * v["ci95"][1] - m for m, v in zip(mid, values)],
        ]
        ax.bar(xs, mid, width, yerr=err, capsize=3, label=name)
    ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
    ax.set_ylabel(ylabel)
    if not percent_of_zero:
        ax.axhline(0, color="black", linewidth=0.8)
    ax.legend(fontsize=8)


def figures(out: Path, name: str, group: dict) -> list[tuple[str, str]]:
    """Three PNGs for one group of runs; returns (file, caption) pairs."""
    made = []
    acc = group["accuracy"]
    domains, stages = list(acc), list(next(iter(acc.values())))
    fig, ax = plt.subplots(figsize=(9, 3.4))
    errorbars(ax, domains, {s: [acc[d][s] for d in domains] for s in stages}, "greedy accuracy (%)", True)
    ax.set_title(f"{name}: accuracy by stage (mean over seeds, 95% interval over seeds and tasks)", fontsize=10)
    made.append(save(fig, out / f"study_{name}_accuracy.png", "Accuracy by stage, with 95% intervals."))
    diff = group["curriculum_minus_ablation"]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    errorbars(ax, list(diff), {"curriculum − ablation": list(diff.values())}, "difference (points)", False)
    ax.set_title(f"{name}: curriculum minus ablation, per domain (paired, 95% interval)", fontsize=10)
    made.append(save(fig, out / f"study_{name}_ablation.png", "Curriculum minus ablation per domain."))
    skills = group["skills"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    errorbars(ax, stages, {k: [v[s] for s in stages] for k, v in skills.items()}, "share outside math (%)", True)
    ax.set_title(f"{name}: skill shares by stage, non-math domains (95% interval)", fontsize=10)
    made.append(save(fig, out / f"study_{name}_skills.png", "Skill shares outside math by stage."))
    if any(any(c) for c in group.get("schedule_curves", {}).values()):
        made.append(schedule_figure(out, name, group["schedule_curves"]))
    return made


def schedule_figure(out: Path, name: str, curves: dict) -> tuple[str, str]:
    """Held-out accuracy outside math against training time during joint RL, a colour per schedule, a line
    per seed."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for k, (schedule, seeds) in enumerate(curves.items()):
        for s, curve in enumerate(seeds):
            if curve:
                t, acc = zip(*curve)
                ax.plot(t, [100 * a for a in acc], color=f"C{k}", marker=".", alpha=0.8,
                        label=schedule if s == 0 else None)  # fmt: skip
    ax.set_xlabel("joint RL training time (s)")
    ax.set_ylabel("greedy accuracy outside math (%)")
    ax.set_title(f"{name}: joint RL's learning curve outside math, per schedule (a line per seed)", fontsize=10)
    ax.legend(fontsize=8)
    return save(fig, out / f"study_{name}_schedules.png", "Joint RL's learning curve outside math, per schedule.")


TIME_CAPTION = (
    "Time to the fixed curriculum's final accuracy outside math (rl_joint's learning curve, training seconds; "
    "speed-up: the fixed runs' total time over the adaptive runs', when every adaptive run gets there):"
)


def time_table(times: dict) -> Table:
    rows = []
    for schedule, t in times.items():
        if not t:
            continue
        seeds = "; ".join(
            f"{100 * r['target']:.1f}%: {r['fixed_s']:.0f} s vs "
            + ("never" if r["adaptive_s"] is None else f"{r['adaptive_s']:.0f} s")
            for r in t["per_seed"]
        )
        rows.append([schedule, seeds, "-" if t["speedup"] is None else f"{t['speedup']:.2f}x"])
    return Table(["schedule", "per seed: target, fixed vs adaptive", "speed-up"], rows)


def save(fig, path: Path, caption: str) -> tuple[str, str]:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path.name, caption


def write_study_report(out: Path, result: dict) -> Path:
    plan = result["plan"]
    md = [
        "# Study",
        "",
        f"`{plan['config']}` and its ablation `{plan['ablation']}`, seeds 0–{plan['seeds'] - 1}. Effects are in "
        "points, averaged over seeds; intervals are 95%, from a bootstrap over seeds and, within each seed, over "
        "tasks. A verdict is *supported* when the interval excludes 0, *not supported* when it lies wholly "
        "below +2 points, and *cannot tell at this power* otherwise.",
        "",
    ]
    for name, group in result["groups"].items():
        md += [f"## {name}", "", md_table(claims_table(group["claims"])), ""]
        diff = group["curriculum_minus_ablation"]
        md += ["Curriculum minus ablation, final stages, per domain:", ""]
        md += [md_table(Table(["domain", "difference (points)"], [[d, signed(v)] for d, v in diff.items()])), ""]
        acc = group["accuracy"]
        stages = list(next(iter(acc.values())))
        rows = [[d] + [level(acc[d][s]) for s in stages] for d in acc]
        md += ["Greedy accuracy by stage:", "", md_table(Table(["domain"] + stages, rows)), ""]
        md += [PAYOFF_CAPTION, "", md_table(payoff_table(group["payoff"])), ""]
        md += [CHECKS_CAPTION, "", md_table(checks_table(group["checks"])), ""]
        if any(group.get("time_to_fixed", {}).values()):
            md += [TIME_CAPTION, "", md_table(time_table(group["time_to_fixed"])), ""]
        for file, caption in figures(out, name, group):
            md += [f"![{caption}]({file})", ""]
    path = out / "study.md"
    path.write_text("\n".join(md))
    return path

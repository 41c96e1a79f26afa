"""The report card of one or more runs: report.md and a self-contained report.html (plots inlined as PNG)
with accuracy per domain by stage, RL training curves, skill frequencies, the ablation table and examples."""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mathfirst.config import RL_STAGES, STAGES  # noqa: E402
from mathfirst.data.traces import SKILL_PREFIXES  # noqa: E402
from mathfirst.eval.curve import read_curve  # noqa: E402
from mathfirst.eval.paired import NON_MATH, differences  # noqa: E402
from mathfirst.study.skills import SKILLS, analyze_run, read_samples  # noqa: E402
from mathfirst.train.metrics import read_metrics  # noqa: E402

CURVES = ("reward", "acc", "response_length", "entropy", "dropped_share")


@dataclass
class Run:
    path: Path
    name: str
    evals: dict[str, dict]  # stage -> domain -> {greedy, mean@k, chance, n}
    metrics: dict[str, list[dict]]  # RL stage -> metrics rows
    skills: dict[str, dict]  # stage -> domain -> skill -> {rate, lo, hi}
    benchmarks: dict[str, dict]  # stage -> benchmark -> {accuracy, ci95, n} (eval.benchmarks)
    curves: dict[str, list[dict]]  # RL stage -> learning-curve points (rl_*.eval_every)


def load_run(path: Path) -> Run:
    evals = {
        s: json.loads((path / s / "eval.json").read_text())["domains"]
        for s in STAGES
        if (path / s / "eval.json").is_file()
    }
    if not evals:
        raise FileNotFoundError(f"{path}: no evaluated stage (no <stage>/eval.json)")
    metrics = {s: read_metrics(path / s / "metrics.jsonl") for s in RL_STAGES if (path / s / "metrics.jsonl").is_file()}
    skills_file = path / "skills.json"
    skills = json.loads(skills_file.read_text()) if skills_file.is_file() else analyze_run(path)
    benchmarks = {
        s: json.loads((path / s / "bench.json").read_text())["benchmarks"]
        for s in STAGES
        if (path / s / "bench.json").is_file()
    }
    curves = {s: read_curve(path / s) for s in RL_STAGES if read_curve(path / s)}
    return Run(path, path.name, evals, metrics, skills["stages"], benchmarks, curves)


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def with_interval(r: dict, key: str) -> str:
    """`r[key]` as a percentage, with its 95% interval when one was recorded (`KEY_ci95`, or lo/hi)."""
    ci = r.get(f"{key}_ci95") or ([r["lo"], r["hi"]] if "lo" in r and "hi" in r else None)
    return pct(r.get(key)) + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def signed(d: dict | None) -> str:
    """A paired difference in points with its 95% interval; * marks one whose interval excludes 0."""
    if d is None:
        return "–"
    lo, hi = d["ci95"]
    return f"{100 * d['diff']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]" + (" *" if d["distinct"] else "")


# ---- blocks: each section is built once and rendered both to Markdown and to HTML ----


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    name: str
    png: bytes
    caption: str


def accuracy_table(run: Run) -> Table:
    stages = list(run.evals)
    domains = list(next(iter(run.evals.values())))
    rows = [
        [d, pct(run.evals[stages[0]][d]["chance"])] + [with_interval(run.evals[s][d], "greedy") for s in stages]
        for d in domains
    ]
    return Table(["domain", "chance"] + stages, rows)


def benchmark_table(run: Run) -> Table:
    """Greedy accuracy on each benchmark after each stage, with its 95% Wilson interval."""
    stages = list(run.benchmarks)
    names = list(next(iter(run.benchmarks.values())))

    def cell(r: dict) -> str:
        lo, hi = r["ci95"]
        return f"{pct(r['accuracy'])} [{pct(lo)}, {pct(hi)}]"

    rows = [[b, str(run.benchmarks[stages[0]][b]["n"])] + [cell(run.benchmarks[s][b]) for s in stages] for b in names]
    return Table(["benchmark", "n"] + stages, rows)


def mean_key(run: Run) -> str | None:
    """The eval key of the sampled accuracy, e.g. `mean@4` (None when the run sampled nothing)."""
    first_domain = next(iter(next(iter(run.evals.values())).values()))
    keys = (k for k, v in first_domain.items() if k.startswith("mean@") and not k.endswith("_ci95") and v is not None)
    return next(keys, None)


def mean_at_k_table(run: Run) -> Table:
    stages = list(run.evals)
    domains = list(next(iter(run.evals.values())))
    key = mean_key(run)
    rows = [[d] + [with_interval(run.evals[s][d], key) for s in stages] for d in domains]
    return Table([f"domain ({key})"] + stages, rows)


def differences_table(diffs: dict, key: str, label: str) -> Table:
    """Stage-to-stage differences per domain, paired on the same tasks (`key`: greedy or mean)."""
    steps = diffs["stages"][key]
    domains = list(dict.fromkeys(d for step in steps.values() for d in step))
    rows = [[d] + [signed(steps[s].get(d)) for s in steps] for d in domains]
    return Table([f"domain ({label})"] + list(steps), rows)


def other_domains_mean(domains: dict[str, dict], key: str = "greedy") -> float | None:
    others = [r.get(key) for d, r in domains.items() if d != "math"]
    return None if None in others or not others else sum(others) / len(others)


def ablation_table(runs: list[Run], diffs: dict, key: str = "greedy") -> Table:
    """Final-stage accuracy (`greedy` or `mean@k`) of each run side by side, e.g. the curriculum and its
    no-math ablation, and the first run minus each other, paired on the same tasks."""
    finals = {r.name: r.evals[list(r.evals)[-1]] for r in runs}
    domains = list(next(iter(finals.values())))
    versus = [diffs["versus"][r.name]["greedy" if key == "greedy" else "mean"] for r in runs[1:]]
    rows = [
        [d] + [pct(f[d].get(key)) if d in f else "–" for f in finals.values()] + [signed(v.get(d)) for v in versus]
        for d in domains
    ]
    rows.append(
        [NON_MATH]
        + [pct(other_domains_mean(f, key)) for f in finals.values()]
        + [signed(v.get(NON_MATH)) for v in versus]
    )
    header = [f"domain ({key})"] + [f"{r.name} ({' → '.join(r.evals)})" for r in runs]
    return Table(header + [f"{runs[0].name} − {r.name}" for r in runs[1:]], rows)


def answer_collapse(run: Run, stage: str) -> dict[str, tuple[float, float | None]]:
    """Per domain, from the stage's greedy responses: (the accuracy of always giving the held-out set's most
    common gold answer, the share of the responses that give the stage's own most common answer). A policy
    that has learnt one answer (Yes to every syllogism) scores the first and shows a high second."""
    rows = [r for r in read_samples(run.path / stage / "samples.jsonl") if r["kind"] == "greedy"]
    out = {}
    for domain in dict.fromkeys(r["domain"] for r in rows):
        mine = [r for r in rows if r["domain"] == domain]
        gold = Counter(str(r["answer"]) for r in mine).most_common(1)[0][1]
        answers = [r["pred"] for r in mine if r.get("pred") is not None]
        top = Counter(map(str, answers)).most_common(1)[0][1] / len(mine) if answers else None
        out[domain] = (gold / len(mine), top)  # no answer to count where the verifier keeps none (code runs)
    return out


def collapse_table(run: Run) -> Table:
    """Per domain: the majority-answer baseline, then per stage its accuracy and the share of its greedy
    answers that are its most common one, so that an accuracy reached by repeating one answer is seen."""
    stages = [s for s in run.evals if (run.path / s / "samples.jsonl").is_file()]
    collapse = {s: answer_collapse(run, s) for s in stages}
    domains = list(next(iter(run.evals.values())))
    rows = [
        [d, pct(collapse[stages[0]][d][0])]
        + [f"{pct(run.evals[s][d]['greedy'])} / {pct(collapse[s][d][1])}" for s in stages]
        for d in domains
        if all(d in collapse[s] for s in stages)
    ]
    return Table(["domain (accuracy / most common answer's share)", "majority answer"] + stages, rows)


def format_table(run: Run) -> Table:
    """Per domain and stage: the share of greedy answers in the verifier's format, and the accuracy among them
    (95% interval), so that a gain in format is told apart from a gain in correctness."""
    stages = [s for s in run.evals if "format" in next(iter(run.evals[s].values()))]
    domains = list(next(iter(run.evals.values())))

    def cell(r: dict) -> str:
        return f"{pct(r['format'])} / " + with_interval(r, "acc_in_format")

    rows = [[d] + [cell(run.evals[s][d]) for s in stages] for d in domains]
    return Table(["domain (in format / accuracy among them)"] + stages, rows)


def verdict(d: dict) -> str:
    """A paired difference in words: it moved (up or down) beyond its 95% interval, or it did not."""
    if not d["distinct"]:
        return "did not move beyond its interval"
    return "moved up" if d["diff"] > 0 else "moved down"


def effects_table(diffs: dict, key: str, label: str) -> Table:
    """What each stage did, per domain and over the non-math domains, in points and in words."""
    rows = [
        [step, domain, signed(d), verdict(d)]
        for step, domains in diffs["stages"][key].items()
        for domain, d in domains.items()
        if domain in ("math", NON_MATH) or key == "greedy"
    ]
    return Table(["stage", f"domain ({label})", "change, points [95%]", "in words"], rows)


def skills_table(run: Run) -> Table:
    rows = []
    for stage, domains in run.skills.items():
        for domain, rates in domains.items():
            rows.append([stage, domain] + [with_interval(rates[s], "rate") for s in SKILLS] + [str(rates["n"])])
    return Table(["stage", "domain"] + list(SKILLS) + ["n"], rows)


def rl_summary_table(run: Run) -> Table:
    rows = []
    for stage, rows_ in run.metrics.items():
        first, last = rows_[0], rows_[-1]
        for key in CURVES:
            if key in first and key in last:
                rows.append([stage, key, f"{first[key]:.4g}", f"{last[key]:.4g}", str(last["step"])])
    return Table(["stage", "metric", "first step", "last step", "steps"], rows)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def accuracy_figure(run: Run) -> Figure:
    stages = list(run.evals)
    domains = list(next(iter(run.evals.values())))
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / len(stages)
    for i, stage in enumerate(stages):
        xs = [j + (i - (len(stages) - 1) / 2) * width for j in range(len(domains))]
        values = [100 * run.evals[stage][d]["greedy"] for d in domains]
        cis = [run.evals[stage][d].get("greedy_ci95") for d in domains]
        errors = None if None in cis else [[v - 100 * c[0] for v, c in zip(values, cis)],
                                            [100 * c[1] - v for v, c in zip(values, cis)]]  # fmt: skip
        ax.bar(xs, values, width, yerr=errors, capsize=2, label=stage)
    ax.scatter(range(len(domains)), [100 * run.evals[stages[0]][d]["chance"] for d in domains], marker="_", s=600,
               color="black", label="chance", zorder=3)  # fmt: skip
    ax.set_xticks(range(len(domains)), domains)
    ax.set_ylabel("held-out accuracy, greedy (%)")
    ax.set_ylim(0, 100)
    ax.legend(ncol=len(stages) + 1, fontsize=8, loc="upper right")
    ax.set_title(f"{run.name}: accuracy per domain after each stage")
    return Figure(
        "accuracy.png",
        _png(fig),
        "Held-out greedy accuracy per domain after each stage, with 95% Wilson intervals; black ticks mark chance.",
    )


def curves_figure(run: Run) -> Figure | None:
    if not run.metrics:
        return None
    fig, axes = plt.subplots(1, len(CURVES), figsize=(3.2 * len(CURVES), 2.8))
    offset = 0
    for stage, rows in run.metrics.items():
        steps = [offset + r["step"] for r in rows]
        for ax, key in zip(axes, CURVES):
            ax.plot(steps, [r.get(key) for r in rows], label=stage)
        offset = steps[-1] if steps else offset
    for ax, key in zip(axes, CURVES):
        ax.set_title(key.replace("_", " "), fontsize=10)
        ax.set_xlabel("RL step")
    axes[0].legend(fontsize=8)
    return Figure("rl_curves.png", _png(fig), "RL training curves, stages one after another.")


def learning_curve_figure(run: Run) -> Figure | None:
    """Per RL stage: held-out greedy accuracy per domain (95% band) and training accuracy, against the step and
    against training time (sampling + updates, evaluation excluded)."""
    if not run.curves:
        return None
    fig, axes = plt.subplots(len(run.curves), 2, figsize=(11, 3.3 * len(run.curves)), squeeze=False)
    for (stage, points), row in zip(run.curves.items(), axes):
        train = [r for r in run.metrics.get(stage, []) if "acc" in r]
        train_minutes = [sum(r.get("step_s", 0.0) for r in train[: i + 1]) / 60 for i in range(len(train))]
        by_step = ([p["step"] for p in points], [r["step"] for r in train])
        by_time = ([p["train_s"] / 60 for p in points], train_minutes)
        for ax, (x_points, x_train), xlabel in zip(row, (by_step, by_time), ("RL step", "training time (min)")):
            for domain in points[0]["domains"]:
                ys = [100 * p["domains"][domain]["greedy"] for p in points]
                line = ax.plot(x_points, ys, marker="o", ms=3, label=f"{domain} (held-out)")[0]
                lo = [100 * p["domains"][domain]["greedy_ci95"][0] for p in points]
                hi = [100 * p["domains"][domain]["greedy_ci95"][1] for p in points]
                ax.fill_between(x_points, lo, hi, color=line.get_color(), alpha=0.15)
            ax.plot(x_train, [100 * r["acc"] for r in train], color="gray", lw=1, ls="--",
                    label="training accuracy (sampled)")  # fmt: skip
            ax.set_xlabel(xlabel)
            ax.set_ylabel("accuracy (%)")
            ax.set_ylim(0, 100)
            ax.set_title(f"{stage}", fontsize=10)
        row[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return Figure(
        "learning_curves.png",
        _png(fig),
        "Learning curves: held-out greedy accuracy per domain during each RL stage (95% Wilson bands) and the "
        "accuracy of the responses sampled for training, by step (left) and by training time (right).",
    )


class BudgetPoint(NamedTuple):
    steps: int  # RL updates so far, over the run's RL stages
    minutes: float  # their training time (sampling and updates; evaluation excluded)
    accuracy: dict[str, float]  # held-out greedy accuracy per domain
    stage_end: str = ""  # the stage whose final evaluation this is ("" for a learning-curve point)


def rl_budget_points(run: Run) -> list[BudgetPoint]:
    """Held-out greedy accuracy per domain against the RL spent so far, over the run's RL stages in order: the
    last stage before RL at 0, each RL stage's learning-curve points past its step 0 (whose model is the
    previous stage's) and its final evaluation at the stage's end."""
    before = [s for s in run.evals if s not in RL_STAGES]
    points = [BudgetPoint(0, 0.0, greedy(run.evals[before[-1]]), before[-1])] if before else []
    steps, minutes = 0, 0.0
    for stage in (s for s in RL_STAGES if s in run.evals or s in run.curves):
        points += [
            BudgetPoint(steps + p["step"], minutes + p["train_s"] / 60, greedy(p["domains"]))
            for p in run.curves.get(stage, [])
            if p["step"] > 0
        ]
        rows = run.metrics.get(stage, [])
        steps += max((r["step"] for r in rows), default=0)
        minutes += sum(r.get("step_s", 0.0) for r in rows) / 60
        if stage in run.evals:
            points.append(BudgetPoint(steps, minutes, greedy(run.evals[stage]), stage))
    return points


def greedy(domains: dict[str, dict]) -> dict[str, float]:
    return {d: r["greedy"] for d, r in domains.items()}


def budget_value(acc: dict[str, float], panel: str) -> float | None:
    """A budget point's math accuracy, or the mean of its other domains (None where it has none)."""
    if panel == "math":
        return acc.get("math")
    others = [v for d, v in acc.items() if d != "math"]
    return sum(others) / len(others) if others else None


def budget_figure(runs: list[Run]) -> Figure | None:
    """Math and the non-math mean against RL updates (top) and RL training minutes (bottom), one line per run:
    the curriculum and its ablations compared at equal RL budget rather than only at their ends."""
    points = {r.name: rl_budget_points(r) for r in runs}
    if len(runs) < 2 or not all(points.values()):
        return None
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.2))
    for row, (axis, xlabel) in zip(axes, (("steps", "RL steps"), ("minutes", "RL training time (min)"))):
        for ax, title in zip(row, ("math", NON_MATH)):
            for name, pts in points.items():
                xy = [(getattr(p, axis), budget_value(p.accuracy, title), p.stage_end) for p in pts]
                xy = [(x, 100 * y, end) for x, y, end in xy if y is not None]
                line = ax.plot([x for x, _, _ in xy], [y for _, y, _ in xy], marker="o", ms=3, label=name)[0]
                ends = [(x, y, end) for x, y, end in xy if end]
                ax.plot([x for x, _, _ in ends], [y for _, y, _ in ends], "s", ms=6, color=line.get_color())
                for x, y, end in ends:
                    ax.annotate(end, (x, y), textcoords="offset points", xytext=(3, -10), fontsize=7)
            ax.set_xlabel(f"{xlabel}, stages one after another")
            ax.set_ylabel("held-out greedy accuracy (%)")
            ax.set_title(title, fontsize=10)
    axes[0][1].legend(fontsize=8)
    fig.tight_layout()
    return Figure(
        "rl_budget.png",
        _png(fig),
        "Each run's held-out accuracy against the RL it had spent: updates (top) and training time, sampling and "
        "updates (bottom; comparable only between runs on the same machine and load): "
        "learning-curve points (dots), which use a subset of the tasks (rl_*.eval_tasks), and stage-end evaluations "
        "(squares, named) on all of them.",
    )


def scheduled_steps(run: Run) -> dict[str, list[dict]]:
    """Per RL stage that scheduled several domains: its metrics rows that record the domain shares (not the
    learning curve's step-0 row)."""
    shares = {s: [r for r in rows if any(k.startswith("share_") for k in r)] for s, rows in run.metrics.items()}
    return {s: rows for s, rows in shares.items() if rows}


def schedule_figure(run: Run) -> Figure | None:
    """Per multi-domain RL stage: the share of each step's prompts drawn from each domain (rl_*.schedule)."""
    stages = scheduled_steps(run)
    if not stages:
        return None
    fig, axes = plt.subplots(1, len(stages), figsize=(5.5 * len(stages), 3), squeeze=False)
    for ax, (stage, rows) in zip(axes[0], stages.items()):
        domains = [k.removeprefix("share_") for k in rows[-1] if k.startswith("share_")]
        shares = [[100 * r.get(f"share_{d}", 0.0) for r in rows] for d in domains]
        ax.stackplot([r["step"] for r in rows], shares, labels=domains, alpha=0.85)
        ax.set_xlabel("RL step")
        ax.set_ylabel("share of the step's prompts (%)")
        ax.set_ylim(0, 100)
        ax.set_title(stage, fontsize=10)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return Figure(
        "domain_shares.png",
        _png(fig),
        "The domain schedule: the share of each RL step's prompts drawn from each domain (rl_*.schedule).",
    )


def skills_figure(run: Run) -> Figure:
    stages = list(run.skills)
    domains = list(next(iter(run.skills.values())))
    fig, axes = plt.subplots(1, len(SKILLS), figsize=(3.4 * len(SKILLS), 0.5 + 0.45 * len(domains)), sharey=True)
    for ax, skill in zip(axes, SKILLS):
        grid = [[100 * run.skills[s][d][skill]["rate"] for s in stages] for d in domains]
        ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", color="white" if v < 60 else "black", fontsize=8)
        ax.set_xticks(range(len(stages)), stages, rotation=30, fontsize=8)
        ax.set_yticks(range(len(domains)), domains)
        ax.set_title(skill, fontsize=10)
    return Figure("skills.png", _png(fig), "Share of responses (%) showing each skill, per domain and stage.")


def example_blocks(run: Run) -> list[tuple[str, str, list[str]]]:
    """One greedy response per domain from the last stage: (title, text, skills found), preferring a correct one."""
    stage = list(run.evals)[-1]
    rows = [r for r in read_samples(run.path / stage / "samples.jsonl") if r["kind"] == "greedy"]
    out = []
    for domain in dict.fromkeys(r["domain"] for r in rows):
        mine = [r for r in rows if r["domain"] == domain]
        best = max(mine, key=lambda r: (r["score"], sum(r["skills"].values())))
        skills = [s for s, on in best["skills"].items() if on]
        verdict = "correct" if best["score"] else "wrong"
        title = f"{domain} ({stage}, {verdict}; gold {best['answer'][:40]})"
        out.append((title, f"Q: {best['question']}\n{best['response']}", skills))
    return out


# ---- rendering ----


def md_table(t: Table) -> str:
    lines = ["| " + " | ".join(t.header) + " |", "|" + "---|" * len(t.header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in t.rows])


def html_table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in t.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def mark_moves(text: str) -> str:
    """HTML of a response with its skill-move lines highlighted."""
    out = []
    for line in text.splitlines():
        skill = next((s for s, p in SKILL_PREFIXES.items() if line.strip().startswith(p)), None)
        esc = html.escape(line)
        out.append(f'<mark class="{skill}" title="{skill}">{esc}</mark>' if skill else esc)
    return "\n".join(out)


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 9px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}img{max-width:100%}
pre{background:#f7f7f7;padding:.6em;border-radius:4px;white-space:pre-wrap}
mark.subgoal{background:#cfe8ff}mark.enumeration{background:#e4d7ff}mark.verification{background:#d4f5d4}
mark.backtracking{background:#ffe1c4}.skills{font-size:.9em;color:#555}"""


def write_report(paths: list[Path]) -> tuple[Path, Path]:
    """Write report.md, report.html and the PNG plots into the first run's folder."""
    runs = [load_run(p) for p in paths]
    return render(runs[0], report_sections(runs, paths))


def report_sections(runs: list[Run], paths: list[Path]) -> list[tuple[str, list]]:
    """The report's sections as (title, tables and figures); the figures and differences.json are written too."""
    main = runs[0]
    accuracy, rl_curves, learning, skills = (
        accuracy_figure(main), curves_figure(main), learning_curve_figure(main), skills_figure(main)
    )  # fmt: skip
    shares, budget = schedule_figure(main), budget_figure(runs)
    (main.path / "report").mkdir(exist_ok=True)
    for f in (accuracy, rl_curves, learning, skills, shares, budget):
        if f is not None:
            (main.path / "report" / f.name).write_bytes(f.png)
    diffs = differences(paths)
    (main.path / "report" / "differences.json").write_text(json.dumps(diffs, indent=1, ensure_ascii=False))
    key = mean_key(main)
    sections: list[tuple[str, list]] = [
        ("Held-out accuracy (greedy, 95% interval) per domain and stage", [accuracy_table(main), accuracy]),
        ("Held-out accuracy, mean over sampled responses (95% interval)", [mean_at_k_table(main)]),
        (
            "What each stage did (paired on the same tasks, 95% interval)",
            [effects_table(diffs, "greedy", "greedy")] + ([effects_table(diffs, "mean", key)] if key else []),
        ),
        (
            "Stage-to-stage differences in points (paired on the same tasks, 95% interval; * excludes 0)",
            [differences_table(diffs, "greedy", "greedy")] + ([differences_table(diffs, "mean", key)] if key else []),
        ),
    ]
    if learning is not None:
        sections.append(("Learning curves of the RL stages", [learning]))
    formats = format_table(main)
    if formats.header[1:]:
        sections.append(("Answer format: share of greedy answers the verifier can read, accuracy among them",
                         [formats]))  # fmt: skip
    sections.append(("One answer for all? Accuracy against always giving the most common gold answer",
                     [collapse_table(main)]))  # fmt: skip
    if main.benchmarks:
        sections.append(("Benchmarks (greedy, 95% interval)", [benchmark_table(main)]))
    if main.metrics:
        sections.append(("RL training", [rl_summary_table(main), rl_curves] + ([shares] if shares else [])))
    sections.append(("Cognitive skills per domain and stage (95% interval)", [skills_table(main), skills]))
    if len(runs) > 1:
        tables = [ablation_table(runs, diffs)] + ([ablation_table(runs, diffs, key)] if key else [])
        sections.append(("Ablation: final stage of each run", tables + ([budget] if budget else [])))
    return sections


def render(main: Run, sections: list[tuple[str, list]]) -> tuple[Path, Path]:
    """report.md and a self-contained report.html of the sections, then one response per domain."""
    examples = example_blocks(main)

    md = [f"# Report: {main.name}", ""]
    body = [f"<h1>Report: {html.escape(main.name)}</h1>"]
    for title, blocks in sections:
        md += [f"## {title}", ""]
        body.append(f"<h2>{html.escape(title)}</h2>")
        for b in blocks:
            if isinstance(b, Table):
                md += [md_table(b), ""]
                body.append(html_table(b))
            else:
                md += [f"![{b.caption}](report/{b.name})", "", f"*{b.caption}*", ""]
                data = base64.b64encode(b.png).decode()
                body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(b.caption)}">'
                            f"<figcaption>{html.escape(b.caption)}</figcaption></figure>")  # fmt: skip
    md += ["## One response per domain", ""]
    body.append("<h2>One response per domain</h2>")
    for title, text, skills in examples:
        found = ", ".join(skills) or "none"
        md += [f"**{title}** — skills: {found}", "", "```", text, "```", ""]
        body.append(f"<h3>{html.escape(title)}</h3><div class='skills'>skills: {html.escape(found)}</div>"
                    f"<pre>{mark_moves(text)}</pre>")  # fmt: skip
    md_path, html_path = main.path / "report.md", main.path / "report.html"
    md_path.write_text("\n".join(md))
    html_path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>mathfirst report: {html.escape(main.name)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    )
    return md_path, html_path

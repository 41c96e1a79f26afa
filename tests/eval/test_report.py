import json
import re

from mathfirst.eval.paired import NON_MATH
from mathfirst.eval.report import (
    answer_collapse,
    budget_figure,
    budget_value,
    load_run,
    mean_key,
    rl_budget_points,
    scheduled_steps,
    signed,
    write_report,
)
from mathfirst.eval.stats import wilson

DOMAINS = ("math", "stem", "logic")
SKILLS_ON = {"subgoal": True, "enumeration": False, "verification": True, "backtracking": False}


def make_run(path, accs: dict[str, dict[str, float]], rl_steps: int = 4, n: int = 100):
    """A run folder as the curriculum writes it: eval.json, samples.jsonl and RL metrics per stage. Each
    domain has `n` tasks; the first acc x n are solved greedily, and the first of each task's two samples
    scores as its greedy answer, the second 0 (so mean@2 is acc / 2)."""
    for stage, by_domain in accs.items():
        d = path / stage
        d.mkdir(parents=True)
        domains = {
            k: {
                "n": n,
                "greedy": v,
                "greedy_ci95": list(wilson(round(v * n), n)),
                "mean@2": v / 2,
                "chance": 0.1,
                "format": 0.9,
                "acc_in_format": v / 0.9,
                "acc_in_format_ci95": [0.0, 1.0],
            }
            for k, v in by_domain.items()
        }
        (d / "eval.json").write_text(json.dumps({"stage": stage, "domains": domains}))
        rows = []
        for k, v in by_domain.items():
            for i in range(n):
                score = float(i < round(v * n))
                base = {"domain": k, "level": 1, "question": f"Q {k} {i}?", "answer": "1", "skills": SKILLS_ON,
                        "response": "Subgoal: s\nCheck: c\nAnswer: \\boxed{1}"}  # fmt: skip
                rows += [base | {"kind": "greedy", "score": score}, base | {"kind": "sample", "score": score},
                         base | {"kind": "sample", "score": 0.0}]  # fmt: skip
        (d / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        if stage.startswith("rl_"):
            metrics = [{"step": i + 1, "reward": 0.1 * i, "acc": 0.5 + 0.01 * i, "response_length": 50 + i,
                        "entropy": 0.2 - 0.01 * i, "dropped_share": 0.25} for i in range(rl_steps)]  # fmt: skip
            (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
            points = [{"step": s, "train_s": 30.0 * s, "eval_s": 5.0, "domains": {
                k: {"greedy": v * s / rl_steps, "greedy_ci95": [0.0, 1.0], "n": n} for k, v in by_domain.items()
            }} for s in (0, rl_steps // 2, rl_steps)]  # fmt: skip
            (d / "curve.jsonl").write_text("".join(json.dumps(p) + "\n" for p in points))
    return path


def md_tables(text: str) -> dict[str, list[list[str]]]:
    """Markdown tables by the heading above them."""
    tables, heading = {}, None
    for block in text.split("\n\n"):
        if block.startswith("## "):
            heading = block[3:].strip()
        elif block.startswith("| ") and heading:
            rows = [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()]
            tables.setdefault(heading, rows[:1] + rows[2:])
    return tables


def test_every_number_in_the_report_comes_from_the_run(tmp_path):
    main = make_run(tmp_path / "curriculum", {
        "sft": {"math": 0.5, "stem": 0.2, "logic": 0.3},
        "rl_math": {"math": 0.61, "stem": 0.22, "logic": 0.3},
        "rl_joint": {"math": 0.6, "stem": 0.35, "logic": 0.41},
    })  # fmt: skip
    ablation = make_run(tmp_path / "no-math", {
        "sft": {"math": 0.5, "stem": 0.2, "logic": 0.3},
        "rl_joint": {"math": 0.55, "stem": 0.3, "logic": 0.33},
    })  # fmt: skip
    md_path, html_path = write_report([main, ablation])
    text = md_path.read_text()
    tables = md_tables(text)

    acc = tables["Held-out accuracy (greedy, 95% interval) per domain and stage"]
    assert acc[0] == ["domain", "chance", "sft", "rl_math", "rl_joint"]
    for row in acc[1:]:
        for stage, cell in zip(acc[0][2:], row[2:]):
            r = json.loads((main / stage / "eval.json").read_text())["domains"][row[0]]
            lo, hi = r["greedy_ci95"]
            assert cell == f"{100 * r['greedy']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"

    skills = json.loads((main / "skills.json").read_text())["stages"]
    for stage, domain, *rates, n in tables["Cognitive skills per domain and stage (95% interval)"][1:]:
        got = [
            f"{100 * r['rate']:.1f}% [{100 * r['lo']:.1f}, {100 * r['hi']:.1f}]"
            for r in (skills[stage][domain][s] for s in ("subgoal", "enumeration", "verification", "backtracking"))
        ]
        assert rates == got and int(n) == skills[stage][domain]["n"]

    diffs = json.loads((main / "report" / "differences.json").read_text())
    title = "Stage-to-stage differences in points (paired on the same tasks, 95% interval; * excludes 0)"
    steps = tables[title]
    assert steps[0] == ["domain (greedy)", "sft → rl_math", "rl_math → rl_joint", "sft → rl_joint"]
    for row in steps[1:]:
        for step, cell in zip(steps[0][1:], row[1:]):
            assert cell == signed(diffs["stages"]["greedy"][step][row[0]])
    math = diffs["stages"]["greedy"]["sft → rl_math"]["math"]
    assert math["diff"] == 0.11 and math["distinct"] and 0 < math["ci95"][0] < 0.11 < math["ci95"][1]  # 11 flips
    logic = diffs["stages"]["greedy"]["sft → rl_math"]["logic"]
    assert logic == {"diff": 0.0, "ci95": [0.0, 0.0], "distinct": False}  # the same answers

    rl = tables["RL training"]
    assert ["rl_math", "acc", "0.5", "0.53", "4"] in rl and ["rl_joint", "entropy", "0.2", "0.17", "4"] in rl

    abl = tables["Ablation: final stage of each run"]
    assert abl[1][:3] == ["math", "60.0%", "55.0%"]
    assert abl[0][0] == "domain (greedy)" and abl[0][-1] == "curriculum − no-math"
    assert abl[-1][:3] == ["mean of the non-math domains", "38.0%", "31.5%"]  # (0.35 + 0.41) / 2, (0.3 + 0.33) / 2
    versus = diffs["versus"]["no-math"]["greedy"]
    assert abl[1][3] == signed(versus["math"]) and abl[-1][3] == signed(versus["mean of the non-math domains"])
    assert versus["mean of the non-math domains"]["diff"] == 0.065 and versus["math"]["diff"] == 0.05
    assert "| domain (mean@2) |" in text and "| mean of the non-math domains | 19.0% | 15.8% |" in text

    effects = tables["What each stage did (paired on the same tasks, 95% interval)"]
    assert ["sft → rl_math", "math", signed(math), "moved up"] in effects
    assert ["sft → rl_math", "logic", signed(logic), "did not move beyond its interval"] in effects
    assert [
        "sft → rl_joint",
        "stem",
        signed(diffs["stages"]["greedy"]["sft → rl_joint"]["stem"]),
        "moved up",
    ] in effects

    formats = tables["Answer format: share of greedy answers the verifier can read, accuracy among them"]
    assert formats[1][:2] == ["math", "90.0% / 55.6% [0.0, 100.0]"]  # 0.5 / 0.9

    page = html_path.read_text()
    images = len(re.findall(r'<img src="data:image/png;base64,', page))
    assert images == 5  # accuracy, learning, RL curves, skills, and the runs against RL time (two runs)
    assert (main / "report" / "learning_curves.png").is_file()
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing fetched
    assert '<mark class="verification"' in page
    for cell in ("61.0%", "38.0%", "31.5%"):
        assert cell in page
    assert all((main / "report" / f).is_file() for f in ("accuracy.png", "rl_curves.png", "skills.png"))


def test_domain_shares_are_drawn_only_for_stages_that_schedule_several_domains(tmp_path):
    run = make_run(tmp_path / "run", {"sft": {"math": 0.5, "logic": 0.3}, "rl_joint": {"math": 0.6, "logic": 0.4}})
    write_report([run])
    assert not (run / "report" / "domain_shares.png").exists()  # no share_<domain> metrics: nothing scheduled
    rows = [json.loads(line) for line in (run / "rl_joint" / "metrics.jsonl").read_text().splitlines()]
    rows = [r | {"share_math": 0.5 - 0.1 * i, "share_logic": 0.5 + 0.1 * i} for i, r in enumerate(rows)]
    rows.insert(0, {"step": 0, "heldout_math": 0.5})  # the learning curve's step 0: no shares, none drawn
    (run / "rl_joint" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [r["step"] for r in scheduled_steps(load_run(run))["rl_joint"]] == [1, 2, 3, 4]
    md, _ = write_report([run])
    assert (run / "report" / "domain_shares.png").stat().st_size > 1000
    assert "report/domain_shares.png" in md.read_text()


def with_step_seconds(run, stage: str, seconds: float):
    """Give each of the stage's RL steps `seconds` of training time, as the loop records it."""
    path = run / stage / "metrics.jsonl"
    rows = [json.loads(line) | {"step_s": seconds} for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_runs_are_compared_against_the_rl_time_they_spent(tmp_path):
    curriculum = make_run(tmp_path / "curriculum", {"sft": {"math": 0.2, "logic": 0.1},
                                                     "rl_math": {"math": 0.6, "logic": 0.1},
                                                     "rl_joint": {"math": 0.6, "logic": 0.5}})  # fmt: skip
    no_math = make_run(
        tmp_path / "no-math", {"sft": {"math": 0.2, "logic": 0.1}, "rl_joint": {"math": 0.3, "logic": 0.4}}
    )
    for run, stage in ((curriculum, "rl_math"), (curriculum, "rl_joint"), (no_math, "rl_joint")):
        with_step_seconds(run, stage, 30.0)  # 4 steps: 2 min per stage; curve points at steps 2 and 4 (1, 2 min)

    points = rl_budget_points(load_run(curriculum))
    assert [(p.steps, p.minutes) for p in points] == [(0, 0), (2, 1), (4, 2), (4, 2), (6, 3), (8, 4), (8, 4)]
    assert points[0].accuracy == {"math": 0.2, "logic": 0.1}  # the cold start, before any RL
    assert points[1].accuracy == {"math": 0.3, "logic": 0.05}  # rl_math's curve at step 2 of 4 (the fixture's half)
    assert points[3].accuracy == {"math": 0.6, "logic": 0.1}  # rl_math's final evaluation at its end
    assert points[4].accuracy == {"math": 0.3, "logic": 0.25}  # rl_joint's step 2, after rl_math's 4 steps, 2 min
    assert [(p.steps, p.minutes) for p in rl_budget_points(load_run(no_math))] == [(0, 0), (2, 1), (4, 2), (4, 2)]
    assert budget_value(points[4].accuracy, NON_MATH) == 0.25 and budget_value(points[4].accuracy, "math") == 0.3

    md, _ = write_report([curriculum, no_math])
    assert (curriculum / "report" / "rl_budget.png").stat().st_size > 1000
    assert "report/rl_budget.png" in md.read_text().split("## Ablation")[1]
    write_report([curriculum])
    assert budget_figure([load_run(curriculum)]) is None  # one run: nothing to compare


def test_an_accuracy_reached_by_repeating_one_answer_is_shown_beside_the_majority_baseline(tmp_path):
    run = make_run(tmp_path / "run", {"sft": {"logic": 0.25}, "rl_joint": {"logic": 0.75}}, n=4)
    path = run / "rl_joint" / "samples.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    greedy = [r for r in rows if r["kind"] == "greedy"]
    for r, gold in zip(greedy, ("Yes", "Yes", "Yes", "No")):
        r |= {"answer": gold, "pred": "Yes", "score": float(gold == "Yes")}  # Yes to everything
    path.write_text("".join(json.dumps(r) + "\n" for r in greedy))
    (run / "sft" / "samples.jsonl").write_text(path.read_text().replace('"pred": "Yes"', '"pred": null'))

    assert answer_collapse(load_run(run), "rl_joint") == {"logic": (0.75, 1.0)}
    assert answer_collapse(load_run(run), "sft") == {"logic": (0.75, None)}  # no answer kept (as for code)
    md, _ = write_report([run])
    table = md_tables(md.read_text())["One answer for all? Accuracy against always giving the most common gold answer"]
    assert table[1] == ["logic", "75.0%", "25.0% / –", "75.0% / 100.0%"]


def test_a_run_that_sampled_nothing_has_no_sampled_accuracy_table(tmp_path):
    run = make_run(tmp_path / "run", {"sft": {"math": 0.5}})
    path = run / "sft" / "eval.json"
    evals = json.loads(path.read_text())
    evals["domains"]["math"] = {k: v for k, v in evals["domains"]["math"].items() if not k.startswith("mean@")}
    evals["domains"]["math"] |= {"mean@0": None, "mean@0_ci95": None}  # what eval.samples: 0 writes
    path.write_text(json.dumps(evals))
    assert mean_key(load_run(run)) is None

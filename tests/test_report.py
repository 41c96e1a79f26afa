import json
import re

from mathfirst.report import write_report

DOMAINS = ("math", "stem", "logic")


def make_run(path, accs: dict[str, dict[str, float]], rl_steps: int = 4):
    """A run folder as the curriculum writes it: eval.json, samples.jsonl and RL metrics per stage."""
    for stage, by_domain in accs.items():
        d = path / stage
        d.mkdir(parents=True)
        domains = {k: {"n": 10, "greedy": v, "mean@2": v / 2, "chance": 0.1} for k, v in by_domain.items()}
        (d / "eval.json").write_text(json.dumps({"stage": stage, "domains": domains}))
        rows = [
            {"domain": k, "kind": "greedy", "level": 1, "question": f"Q {k}?", "answer": "1", "score": 1.0,
             "response": "Subgoal: s\nCheck: c\nAnswer: \\boxed{1}",
             "skills": {"subgoal": True, "enumeration": False, "verification": True, "backtracking": False}}
            for k in by_domain
        ]  # fmt: skip
        (d / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        if stage.startswith("rl_"):
            metrics = [{"step": i + 1, "reward": 0.1 * i, "acc": 0.5 + 0.01 * i, "response_length": 50 + i,
                        "entropy": 0.2 - 0.01 * i, "dropped_share": 0.25} for i in range(rl_steps)]  # fmt: skip
            (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
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

    acc = tables["Held-out accuracy (greedy) per domain and stage"]
    assert acc[0] == ["domain", "chance", "sft", "rl_math", "rl_joint"]
    for row in acc[1:]:
        for stage, cell in zip(acc[0][2:], row[2:]):
            greedy = json.loads((main / stage / "eval.json").read_text())["domains"][row[0]]["greedy"]
            assert cell == f"{100 * greedy:.1f}%"

    skills = json.loads((main / "skills.json").read_text())["stages"]
    for stage, domain, *rates, n in tables["Cognitive skills per domain and stage"][1:]:
        got = [
            f"{100 * skills[stage][domain][s]['rate']:.1f}%"
            for s in ("subgoal", "enumeration", "verification", "backtracking")
        ]
        assert rates == got and int(n) == skills[stage][domain]["n"]

    rl = tables["RL training"]
    assert ["rl_math", "acc", "0.5", "0.53", "4"] in rl and ["rl_joint", "entropy", "0.2", "0.17", "4"] in rl

    abl = tables["Ablation: final stage of each run"]
    assert abl[1][:3] == ["math", "60.0%", "55.0%"]
    assert abl[0][0] == "domain (greedy)"
    assert abl[-1] == ["mean of the non-math domains", "38.0%", "31.5%"]  # (0.35 + 0.41) / 2 and (0.3 + 0.33) / 2
    assert "| domain (mean@2) |" in text and "| mean of the non-math domains | 19.0% | 15.8% |" in text

    page = html_path.read_text()
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 3  # accuracy, RL curves, skills
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing fetched
    assert '<mark class="verification"' in page
    for cell in ("61.0%", "38.0%", "31.5%"):
        assert cell in page
    assert all((main / "report" / f).is_file() for f in ("accuracy.png", "rl_curves.png", "skills.png"))

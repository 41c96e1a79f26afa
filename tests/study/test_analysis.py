import json

import pytest

from mathfirst.eval.stats import wilson
from mathfirst.study.skills import analyze_run, detect_keywords, detect_moves, parse_skill_reply, skill_rates


def test_wilson_interval_matches_known_values():
    lo, hi = wilson(50, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.4038, 0.5962)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0


def test_detectors_on_moves_and_free_text():
    trace = "Subgoal: add.\nCase 1: a\n3 + 4 = 8\nCheck: 3 + 4 = 7, not 8.\nWait, that step was wrong. Redo: 3 + 4 = 7"
    assert detect_moves(trace) == dict(subgoal=True, enumeration=True, verification=True, backtracking=True)
    free = "First, we need to find the area. Let me verify: 3*4=12. Wait, that was wrong; alternatively use..."
    got = detect_keywords(free)
    assert got["subgoal"] and got["verification"] and got["backtracking"] and not got["enumeration"]
    assert not any(detect_keywords("The answer is 12.").values())


def test_skill_rates_count_responses():
    rates = skill_rates(["Check: ok", "Check: ok", "nothing"])
    assert rates["verification"]["rate"] == pytest.approx(2 / 3, abs=1e-4) and rates["n"] == 3
    assert rates["verification"]["lo"] < 2 / 3 < rates["verification"]["hi"]


def test_analyze_run_writes_skills_json(tmp_path):
    for stage, text in [("sft", "Subgoal: x\nAnswer: 1"), ("rl_math", "Check: y\nAnswer: 1")]:
        (tmp_path / stage).mkdir()
        rows = [{"domain": d, "kind": "greedy", "response": text} for d in ("math", "logic")]
        (tmp_path / stage / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = analyze_run(tmp_path)
    saved = json.loads((tmp_path / "skills.json").read_text())
    assert saved == result and list(saved["stages"]) == ["sft", "rl_math"]
    assert saved["stages"]["sft"]["logic"]["subgoal"]["rate"] == 1.0
    assert saved["stages"]["rl_math"]["math"]["subgoal"]["rate"] == 0.0
    with pytest.raises(ValueError):
        analyze_run(tmp_path, "tea-leaves")


def test_parse_skill_judge_reply():
    reply = "subgoal: yes\nEnumeration: no\nverification: YES\n"
    assert parse_skill_reply(reply) == dict(subgoal=True, enumeration=False, verification=True, backtracking=False)
    assert not any(parse_skill_reply("I cannot tell").values())

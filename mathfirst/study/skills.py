"""Cognitive-skill analysis: which of the four skills (subgoal setting, enumeration, verification,
backtracking) each response shows, and how often, per domain and stage, with 95% intervals."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from mathfirst.config import STAGES
from mathfirst.data.traces import SKILL_PREFIXES, detect_skills
from mathfirst.eval.stats import wilson
from mathfirst.prompts import HERE as PROMPTS

SKILLS = tuple(SKILL_PREFIXES)  # subgoal, enumeration, verification, backtracking

# A cheap baseline for free-form text from real models, in the spirit of Gandhi et al. (2025).
KEYWORDS = {
    "subgoal": r"\b(subgoal|first,? (i|we|let'?s)|let'?s (break|start)|step \d|we need to (find|compute)|the goal is)",
    "enumeration": r"\b(case \d|cases?:|consider (each|all|every)|for each (option|case)|option [a-e]\b|possibilit)",
    "verification": r"\b(check:|let me (check|verify)|double[- ]check|verify|verifying|plug(ging)? (it|this|x) back)",
    "backtracking": r"\b(wait,|wait\b|actually,|that('s| is| was) (wrong|incorrect|not right)|let me (redo|reconsider)"
    r"|redo:|i made a mistake|alternatively)",
}
_KEYWORD_RE = {skill: re.compile(pattern, re.IGNORECASE) for skill, pattern in KEYWORDS.items()}


def detect_moves(text: str) -> dict[str, bool]:
    """The tiny world's explicit skill moves (`Subgoal:`, `Case N:`, `Check:`, `Wait, ... Redo:`)."""
    return detect_skills(text)


def detect_keywords(text: str) -> dict[str, bool]:
    """The keyword baseline: phrases that usually signal each skill in free-form reasoning."""
    return {skill: bool(rx.search(text)) for skill, rx in _KEYWORD_RE.items()}


DETECTORS = {"moves": detect_moves, "keywords": detect_keywords}
JUDGE_TEMPLATE = PROMPTS / "skills_judge.txt"


SKILL_REPLY_TOKENS = 48  # four `name: yes|no` lines


def parse_skill_reply(reply: str) -> dict[str, bool]:
    """The judge's four `name: yes|no` lines; a skill it does not mention counts as absent."""
    found = dict(re.findall(r"(subgoal|enumeration|verification|backtracking)\s*:\s*(yes|no)", reply.lower()))
    return {skill: found.get(skill) == "yes" for skill in SKILLS}


def judge_detector(judge) -> Callable[[list[str]], list[dict[str, bool]]]:
    """For real models: an LLM judge (any backend of `mathfirst.rewards.judge.Judge`) labels each response."""
    template = JUDGE_TEMPLATE.read_text()

    def detect_many(texts: list[str]) -> list[dict[str, bool]]:
        prompts = [template.format(response=t[-6000:]) for t in texts]
        replies = judge.ask_many(prompts, max_tokens=SKILL_REPLY_TOKENS)
        return [parse_skill_reply(r) for r in replies]

    return detect_many


def skill_rates(texts: list[str], detector: str | Callable = "moves") -> dict[str, dict[str, float]]:
    """Share of `texts` showing each skill, with its 95% interval and n. `detector` is a name in DETECTORS
    (one text at a time) or a batch function such as `judge_detector(judge)`."""
    found = [DETECTORS[detector](t) for t in texts] if isinstance(detector, str) else detector(texts)
    out = {}
    for skill in SKILLS:
        k = sum(f[skill] for f in found)
        lo, hi = wilson(k, len(found))
        out[skill] = {"rate": round(k / len(found), 4) if found else 0.0, "lo": round(lo, 4), "hi": round(hi, 4)}
    out["n"] = len(found)  # type: ignore[assignment]
    return out


def read_samples(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def analyze_run(run: Path, detector: str = "moves", judge=None) -> dict:
    """Skill frequencies per stage and domain over every evaluated response; written to run/skills.json.
    `detector` is moves, keywords, or judge (then `judge` is a `mathfirst.rewards.judge.Judge`)."""
    if detector == "judge":
        if judge is None:
            raise ValueError("the judge detector needs a judge: an OpenAI-compatible endpoint or a local model")
        how: str | Callable = judge_detector(judge)
    elif detector in DETECTORS:
        how = detector
    else:
        raise ValueError(f"unknown detector {detector!r}; choose from: {', '.join([*DETECTORS, 'judge'])}")
    stages: dict[str, dict] = {}
    for stage in STAGES:
        path = run / stage / "samples.jsonl"
        if not path.is_file():
            continue
        by_domain: dict[str, list[str]] = {}
        for row in read_samples(path):
            by_domain.setdefault(row["domain"], []).append(row["response"])
        stages[stage] = {domain: skill_rates(texts, how) for domain, texts in by_domain.items()}
    result = {"detector": detector, "responses": "every evaluated response (greedy and sampled)", "stages": stages}
    (run / "skills.json").write_text(json.dumps(result, indent=2))
    return result

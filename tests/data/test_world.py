import random
import re
from collections import Counter

import pytest
from tokenizers import pre_tokenizers

from mathfirst.data import traces as trace_language
from mathfirst.data.domains import DOMAIN_NAMES, DOMAINS, logic_tasks, table_tasks
from mathfirst.data.domains.math_tasks import divided
from mathfirst.data.schema import LEVELS
from mathfirst.data.traces import TraceStyle, check_outcome, detect_skills, render
from mathfirst.data.world import generate_tasks, traces
from mathfirst.rewards import compute_score


@pytest.mark.parametrize("domain", DOMAIN_NAMES)
def test_generation_is_deterministic_under_a_seed(domain):
    a = [t.question for t in generate_tasks(domain, "train", 50, seed=7)]
    b = [t.question for t in generate_tasks(domain, "train", 50, seed=7)]
    c = [t.question for t in generate_tasks(domain, "train", 50, seed=8)]
    assert a == b
    assert a != c


@pytest.mark.parametrize("domain", DOMAIN_NAMES)
def test_train_and_heldout_never_share_a_task(domain):
    train = {t.uid for t in generate_tasks(domain, "train", 3000, seed=0)}
    heldout = [t.uid for t in generate_tasks(domain, "heldout", 100, seed=0)]
    assert len(set(heldout)) == 100
    assert not train & set(heldout)


@pytest.mark.parametrize("domain", DOMAIN_NAMES)
def test_heldout_has_the_training_mix_of_levels_and_kinds(domain):
    """Kinds with few distinct tasks are not crowded out of the held-out split by kinds with many."""
    train = Counter((t.level, t.kind) for t in generate_tasks(domain, "train", 3000, seed=0))
    heldout = Counter((t.level, t.kind) for t in generate_tasks(domain, "heldout", 120, seed=0))
    per_level = Counter(level for (level, _), n in heldout.items() for _ in range(n))
    assert per_level == {1: 40, 2: 40, 3: 40}
    for kind, n in train.items():
        assert heldout[kind] / 120 > 0.5 * n / 3000, kind


@pytest.mark.parametrize("domain", DOMAIN_NAMES)
def test_every_level_generates(domain):
    for level in (1, 2, 3):
        tasks = generate_tasks(domain, "train", 20, seed=1, levels=(level,))
        assert {t.level for t in tasks} == {level}


@pytest.mark.parametrize("domain", DOMAIN_NAMES)
def test_gold_answers_pass_their_own_verifier(domain):
    for t in generate_tasks(domain, "heldout", 40, seed=3):
        row = t.to_row("heldout", 0)
        gold = f"```python\n{t.extra['reference']}\n```" if domain == "code" else f"Answer: \\boxed{{{t.answer}}}"
        assert compute_score(row["data_source"], gold, t.answer, row["extra_info"])["score"] == 1.0, t.question


@pytest.mark.parametrize("domain", DOMAIN_NAMES)
def test_clean_traces_are_correct_and_uncorrected_slips_are_wrong(domain):
    tasks = generate_tasks(domain, "train", 30, seed=2)
    rng = random.Random(0)
    for t in tasks:
        row = t.to_row("train", 0)
        clean, ok = render(t.solution, TraceStyle(1.0, 0.0, 1.0), rng)
        assert ok and compute_score(row["data_source"], clean, t.answer, row["extra_info"])["score"] == 1.0
        fixed, ok = render(t.solution, TraceStyle(1.0, 1.0, 1.0), rng)
        assert ok and compute_score(row["data_source"], fixed, t.answer, row["extra_info"])["score"] == 1.0
        slipped, ok = render(t.solution, TraceStyle(1.0, 1.0, 0.0), rng)
        assert not ok and compute_score(row["data_source"], slipped, t.answer, row["extra_info"])["score"] == 0.0


@pytest.mark.parametrize("domain", ["logic", "table"])
def test_a_name_is_the_same_word_in_question_and_trace(domain):
    """A byte-level BPE makes `Bob` at a line start and ` Bob` two tokens: the trace copies ` Bob`."""
    words = pre_tokenizers.ByteLevel(add_prefix_space=False)
    names = {*logic_tasks.NAMES, *table_tasks.NAMES, *"pqrs"}
    for t in generate_tasks(domain, "train", 300, seed=0):
        trace, _ = render(t.solution, TraceStyle(1.0, 0.5, 1.0), random.Random(0))
        in_question = {w for w, _ in words.pre_tokenize_str(t.question)}
        for w, _ in words.pre_tokenize_str(trace):
            assert w.lstrip("Ġ") not in names or w in in_question, (w, t.question, trace)


def test_traces_share_one_language_with_four_skill_moves():
    style = TraceStyle(skill_rate=1.0, slip_rate=0.4, corrected_share=0.5)
    seen = {d: {s: 0 for s in ("subgoal", "enumeration", "verification", "backtracking")} for d in DOMAIN_NAMES}
    outcomes = {True: 0, False: 0}
    for domain in DOMAIN_NAMES:
        tasks = generate_tasks(domain, "train", 200, seed=0)
        for _, text, correct in traces(tasks, style, seed=0):
            outcomes[correct] += 1
            for skill, present in detect_skills(text).items():
                seen[domain][skill] += present
    for domain in DOMAIN_NAMES:
        assert seen[domain]["subgoal"] == 200
        assert seen[domain]["verification"] > 0 and seen[domain]["backtracking"] > 0
    assert sum(seen[d]["enumeration"] > 0 for d in DOMAIN_NAMES) >= 5
    # some slips are corrected (backtracking) and some are not (wrong traces)
    assert 0.05 < outcomes[False] / sum(outcomes.values()) < 0.4


def test_unknown_domain_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown domain 'poetry'"):
        generate_tasks("poetry", "train", 1, 0)


def test_rows_follow_verls_schema():
    row = generate_tasks("code", "train", 1, 0)[0].to_row("train", 5)
    assert set(row) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    assert row["data_source"] == "tiny/code" and row["ability"] == "code"
    assert row["prompt"][0]["role"] == "user"
    assert row["reward_model"]["style"] == "execution"
    assert row["extra_info"]["split"] == "train" and row["extra_info"]["index"] == 5


@pytest.mark.parametrize("domain", DOMAIN_NAMES)
def test_every_answer_has_a_check_with_a_failing_form(domain):
    tasks = generate_tasks(domain, "train", 200, seed=4)
    assert all(t.solution.check for t in tasks)
    with_failing = sum(bool(t.solution.wrong_check) for t in tasks)
    assert with_failing == len(tasks) if domain != "code" else with_failing > 0.8 * len(tasks)


@pytest.mark.parametrize("domain", DOMAIN_NAMES)
def test_a_slip_caught_by_the_answer_check_is_redone_and_scores(domain, monkeypatch):
    """Late catch: the slipped answer fails the answer check, the step is redone, the check then passes."""
    monkeypatch.setattr(trace_language, "ANSWER_CHECK_CATCHES", 1.0)
    rng = random.Random(1)
    for t in [t for t in generate_tasks(domain, "train", 40, seed=5) if t.solution.wrong_check]:
        text, ok = render(t.solution, TraceStyle(1.0, 1.0, 1.0), rng)
        lines = text.splitlines()
        failing = lines.index(f"Check: {t.solution.wrong_check}")
        assert lines[failing + 1].startswith("Wait, that ")
        assert f"Check: {t.solution.check}" in lines[failing + 2 :]
        row = t.to_row("train", 0)
        assert ok and compute_score(row["data_source"], text, t.answer, row["extra_info"])["score"] == 1.0, text


ARITHMETIC_CHECK = re.compile(r"^Check: ([\d +\-×/]+) = (\d+(?: r \d+)?)(?:, not .*)?$")


@pytest.mark.parametrize("domain", ["math", "stem", "simulation", "table"])
def test_arithmetic_answer_checks_are_true(domain):
    """An answer check that computes (`4 × 6 + 6 = 30`, `61 / 7 = 8 r 5, not 9.`) computes right."""
    seen = 0
    for t in generate_tasks(domain, "train", 300, seed=6):
        for line in (f"Check: {t.solution.check}", f"Check: {t.solution.wrong_check}"):
            m = ARITHMETIC_CHECK.match(line)
            if not m:
                continue
            expr, shown = m.group(1).replace("×", "*"), m.group(2)
            if "/" in expr:
                numerator, divisor = expr.rsplit("/", 1)
                assert shown == divided(eval(numerator), int(divisor)), line  # our own generated arithmetic
            else:
                assert float(shown) == eval(expr), line  # our own generated arithmetic
            seen += 1
    assert seen > 100


def test_a_check_that_fails_says_so():
    assert check_outcome("4 × 8 + 6 = 38\nCheck: 4 × 8 + 6 = 38, not 30.\nWait, ...") == "a check fails"
    assert check_outcome("Check: 4 × 6 + 6 = 30\nAnswer: \\boxed{6}") == "checks pass"
    assert check_outcome("x = 6\nAnswer: \\boxed{6}") == "no check"


@pytest.mark.parametrize("domain", DOMAIN_NAMES)
def test_the_domain_registry_is_the_one_place_a_domain_is_added(domain):
    """Each registered domain brings its generator (every kind of every level makes a task of that domain and
    level), its instruction template and its reward style; the config's `domains: all` is the registry's names."""
    from mathfirst.config import EvalConfig, RLConfig

    entry = DOMAINS[domain]
    assert entry.name == domain and entry.module.__name__ == f"mathfirst.data.domains.{domain}_tasks"
    rng = random.Random(0)
    for level in LEVELS:
        assert entry.kinds(level)
        for kind in entry.kinds(level):
            task = kind(rng)
            assert (task.domain, task.level) == (domain, level), kind.__name__
        assert entry.generate(rng, level).domain == domain
        assert {t.level for t in generate_tasks(domain, "heldout", 3, 0, (level,))} == {level}
    assert entry.template.is_file() and "{question}" in entry.template.read_text()
    row = generate_tasks(domain, "train", 1, 0)[0].to_row("train", 0)
    assert row["reward_model"]["style"] == entry.reward_style in ("rule", "execution")
    assert RLConfig(steps=1, domains="all").domains == list(DOMAIN_NAMES) == list(DOMAINS)
    assert EvalConfig(domains="all").domains == list(DOMAIN_NAMES)

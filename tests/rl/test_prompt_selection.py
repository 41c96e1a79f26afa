import random

import pytest

from mathfirst.config import RLConfig
from mathfirst.data.loaders import RLPrompt
from mathfirst.rl.loop import pick_tasks
from mathfirst.rl.prompt_selection import GROUPS_FILE, PromptMemory, informative_chance, outcomes


def prompt(kind: str, i: int, domain: str = "math") -> RLPrompt:
    return RLPrompt(f"reasoning_gym/{kind}", domain, f"{kind} question {i}?", "1", {"kind": kind})


def test_informative_chance_is_the_beta_expectation():
    for g in (2, 8, 16):  # a uniform belief: P(all right) = P(all wrong) = 1 / (G + 1)
        assert informative_chance(1, 1, g) == pytest.approx(1 - 2 / (g + 1))
    rng = random.Random(0)  # against sampling p ~ Beta(2, 5), then a group of 8
    draws = [rng.betavariate(2, 5) for _ in range(20_000)]
    mc = sum(0 < sum(rng.random() < p for _ in range(8)) < 8 for p in draws) / len(draws)
    assert informative_chance(2, 5, 8) == pytest.approx(mc, abs=0.015)
    assert informative_chance(0.04, 40, 8) > 0  # never zero: a hopeless prompt may still be tried


def test_the_draw_moves_to_kinds_whose_groups_are_kept_and_starves_none(tmp_path):
    memory = PromptMemory(tmp_path)
    hard, mixed = [prompt("hard", i) for i in range(50)], [prompt("mixed", i) for i in range(50)]
    for step in range(3):  # three groups of each kind: hard all wrong, mixed half right
        groups = [outcomes(hard[step], [0.0] * 8), outcomes(mixed[step], [1.0, 0.0] * 4)]
        memory.observe(groups)
        memory.record(step + 1, groups)
    picks = memory.draw(hard + mixed, 2000, 8, random.Random(0))
    share_hard = sum(t.extra_info["kind"] == "hard" for t in picks) / len(picks)
    assert 0.05 < share_hard < 0.3  # an unseen hard prompt still gets drawn, far less often
    assert memory.weight(hard[0], 8) < memory.weight(hard[10], 8)  # its own all-wrong group counts too

    replayed = PromptMemory(tmp_path, resume_step=3)  # a resumed stage has the same memory
    assert replayed.prompts == memory.prompts and replayed.kinds == memory.kinds
    assert len(PromptMemory(tmp_path, resume_step=1).prompts) == 2  # steps past a resumed one are forgotten
    assert (tmp_path / GROUPS_FILE).is_file()


def test_informative_selection_keeps_the_domain_shares(tmp_path):
    pools = {"math": [prompt("hard", i) for i in range(20)], "logic": [prompt("k", i, "logic") for i in range(20)]}
    cfg = RLConfig(steps=1, prompt_selection="informative", domain_weights={"logic": 3.0})
    uniform = cfg.model_copy(update={"prompt_selection": "uniform"})
    memory = PromptMemory(tmp_path)
    memory.observe([outcomes(pools["math"][0], [0.0] * 8)] * 5)  # math looks hopeless: it keeps its share
    for chosen in (cfg, uniform):
        tasks = pick_tasks(pools, chosen, 4000, random.Random(1), memory)
        assert sum(t.domain == "logic" for t in tasks) / len(tasks) == pytest.approx(0.75, abs=0.02)

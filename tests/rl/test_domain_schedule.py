import copy

import pytest
import torch

from mathfirst.config import RLConfig
from mathfirst.data.assemble import task_pools
from mathfirst.data.loaders import RLPrompt
from mathfirst.rl.domain_schedule import FLOOR, SCHEDULE_FILE, DomainSchedule, GradientProbe, informative_counts
from mathfirst.rl.loop import pack, train_rl, update
from mathfirst.train.metrics import read_metrics
from tests.rl.test_rl import fixed_groups, rl_cfg

DOMAINS = ["math", "code", "logic"]


def schedule(tmp_path, kind: str, **kw) -> DomainSchedule:
    return DomainSchedule(RLConfig(steps=1, domains=DOMAINS, schedule=kind, **kw), DOMAINS, tmp_path)


def test_fixed_is_the_domain_weights(tmp_path):
    shares = schedule(tmp_path, "fixed", domain_weights={"logic": 2.0, "code": 0.0}).shares()
    assert shares == pytest.approx({"math": 1 / 3, "code": 0.0, "logic": 2 / 3})


def test_learnability_moves_to_informative_domains_keeps_a_floor_and_resumes(tmp_path):
    s = schedule(tmp_path, "learnability", domain_weights={"code": 0.0})
    assert s.shares() == pytest.approx({"math": 0.5, "code": 0.0, "logic": 0.5})  # nothing seen: even
    for step in range(1, 4):  # math: every group all wrong; logic: every group informative
        groups = informative_counts([("math", [0.0] * 8)] * 4 + [("logic", [1.0, 0.0] * 4)] * 4)
        s.record(step, s.shares(), groups, {})
    shares = s.shares()
    assert shares["logic"] > 0.7 and shares["code"] == 0.0
    assert shares["math"] >= FLOOR / 2 and sum(shares.values()) == pytest.approx(1.0)
    cfg = RLConfig(steps=1, domains=DOMAINS, schedule="learnability", domain_weights={"code": 0.0})
    assert DomainSchedule(cfg, DOMAINS, tmp_path, resume_step=3).shares() == pytest.approx(shares)  # replayed
    assert DomainSchedule(cfg, DOMAINS, tmp_path, resume_step=1).shares() != pytest.approx(shares)
    assert [r["step"] for r in read_metrics(tmp_path / SCHEDULE_FILE)] == [1]  # steps past the resumed one dropped


def test_transfer_prefers_the_domain_aligned_with_the_others(tmp_path):
    s = schedule(tmp_path, "transfer")
    even = informative_counts([(d, [1.0, 0.0]) for d in DOMAINS])
    s.record(1, s.shares(), even, {"math": 0.6, "code": 0.5, "logic": -0.8})
    shares = s.shares()
    assert shares["logic"] < shares["code"] < shares["math"]
    assert schedule(tmp_path / "l", "learnability").shares()["logic"] == pytest.approx(1 / 3)


def test_the_probe_reads_each_domains_own_gradient(model_and_tok):
    """The probe's per-domain gradient points the way the gradient of that domain's groups alone does, though
    both domains share every mini-batch."""
    model, tok = model_and_tok
    math = RLPrompt("tiny/math", "math", "Compute 12 + 34.", "46")
    logic = RLPrompt("tiny/logic", "logic", "Who is the tallest?", "Ann")
    groups = fixed_groups(model, tok, math, "Answer: \\boxed{46}", "Who is the tallest? Ann")[:1]
    groups += fixed_groups(model, tok, logic, "Ann", "Compute 12 + 34.\nSubgoal: add the ones.")[:1]
    cfg = rl_cfg(mini_batch_groups=2, micro_batch_rows=8)

    def probe_of(kept) -> GradientProbe:
        m = copy.deepcopy(model)
        probe = GradientProbe(m, [g.task.domain for g in kept], 4)
        batch = pack(kept, tok.pad_token_id, False)
        update(m, None, torch.optim.SGD(m.parameters(), lr=0.0), batch, 4, cfg, torch.Generator(), probe=probe)
        return probe

    probe = probe_of(groups)
    assert set(probe.sums) == {"math", "logic"}
    for group in groups:
        alone = probe_of([group]).sums[group.task.domain]  # the gradient of this group alone
        both = probe.sums[group.task.domain]
        assert float(torch.nn.functional.cosine_similarity(both, alone, dim=0)) > 0.999
    assert float(torch.nn.functional.cosine_similarity(probe.sums["math"], probe.sums["logic"], dim=0)) < 0.99
    align = probe.alignment()
    assert align["math"] == align["logic"] and -1.0 <= align["math"] <= 1.0


def test_train_rl_logs_domain_shares_and_alignment(model_and_tok, tmp_path):
    model, tok = model_and_tok
    cfg = rl_cfg(steps=2, prompts_per_step=4, domains=["math", "logic"], schedule="transfer", dynamic_sampling=False)
    train_rl(model, tok, cfg, task_pools(cfg, (1,), 0), tmp_path, 0, "rl")
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert {"share_math", "share_logic"} <= set(rows[-1])
    assert rows[0]["share_math"] == pytest.approx(0.5)
    assert [r["step"] for r in read_metrics(tmp_path / SCHEDULE_FILE)] == [1, 2]

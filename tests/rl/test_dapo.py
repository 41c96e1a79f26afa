import json
from pathlib import Path

import pytest
import torch

from mathfirst.rl.dapo import agg_loss, group_advantages, informative_groups, kl_penalty, overlong_penalty, policy_loss

VERL = json.loads((Path(__file__).parents[1] / "fixtures" / "verl_dapo.json").read_text())
MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")


def verl_inputs():
    x = VERL["inputs"]
    t = {k: torch.tensor(v) for k, v in x.items() if k != "group_ids"}
    return x["group_ids"], t


def test_group_advantages_by_hand():
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0]), ["a", "a", "a", "a", "b", "b"])
    std = torch.tensor([1.0, 0, 0, 0]).std()  # unbiased: sqrt(0.25 * 4 / 3)
    assert adv[0].item() == pytest.approx(0.75 / (std.item() + 1e-6))
    assert adv[1].item() == pytest.approx(-0.25 / (std.item() + 1e-6))
    assert adv[4:].tolist() == [0.0, 0.0]  # all equal: no signal


def test_group_advantages_match_verl():
    group_ids, t = verl_inputs()
    assert torch.allclose(group_advantages(t["rewards"], group_ids), torch.tensor(VERL["advantages"]), atol=1e-6)


def test_clip_higher_by_hand():
    old = torch.zeros(1, 4)
    new = torch.log(torch.tensor([[1.5, 1.1, 0.5, 0.9]]))  # ratios
    mask = torch.ones(1, 4)
    loss, stats = policy_loss(new, old, torch.tensor([1.0]), mask)  # positive advantage: ratio capped at 1.28
    assert loss.item() == pytest.approx(-(1.28 + 1.1 + 0.5 + 0.9) / 4)
    assert stats["clip_frac"] == pytest.approx(0.25)
    loss, _ = policy_loss(new, old, torch.tensor([-1.0]), mask)  # negative: ratio floored at 0.8
    assert loss.item() == pytest.approx((1.5 + 1.1 + 0.8 + 0.9) / 4)


def test_dual_clip_bounds_negative_advantage():
    loss, _ = policy_loss(torch.log(torch.tensor([[10.0]])), torch.zeros(1, 1), torch.tensor([-2.0]), torch.ones(1, 1))
    assert loss.item() == pytest.approx(2.0 * 3.0)  # -A * clip_c, not -A * 10


@pytest.mark.parametrize("mode", MODES)
def test_policy_loss_matches_verl(mode):
    group_ids, t = verl_inputs()
    adv = torch.tensor(VERL["advantages"])
    loss, stats = policy_loss(t["logp"], t["old_logp"], adv, t["mask"], 0.2, 0.28, 3.0, mode)
    ref = VERL["policy_loss"][mode]
    assert loss.item() == pytest.approx(ref["loss"], abs=1e-6)
    assert stats["clip_frac"] == pytest.approx(ref["clip_frac"], abs=1e-6)
    assert stats["ppo_kl"] == pytest.approx(ref["ppo_kl"], abs=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_agg_loss_matches_verl(mode):
    _, t = verl_inputs()
    assert agg_loss(t["logp"], t["mask"], mode).item() == pytest.approx(VERL["agg_loss"][mode], abs=1e-6)


def test_token_mean_weighs_tokens_not_sequences():
    loss_mat = torch.tensor([[1.0, 1.0, 1.0, 1.0], [4.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    assert agg_loss(loss_mat, mask, "token-mean").item() == pytest.approx(8 / 5)
    assert agg_loss(loss_mat, mask, "seq-mean-token-mean").item() == pytest.approx((1 + 4) / 2)
    assert agg_loss(loss_mat, mask, "seq-mean-token-sum").item() == pytest.approx((4 + 4) / 2)
    with pytest.raises(ValueError):
        agg_loss(loss_mat, mask, "sum-of-everything")


@pytest.mark.parametrize("kind", ["kl", "mse", "low_var_kl"])
def test_kl_matches_verl(kind):
    _, t = verl_inputs()
    assert torch.allclose(kl_penalty(t["logp"], t["ref_logp"], kind), torch.tensor(VERL["kl"][kind]), atol=1e-6)


def test_overlong_penalty_by_hand():
    # max 100 tokens, buffer of 20: no penalty up to 80, then linear down to -factor at 100
    got = overlong_penalty(torch.tensor([10, 80, 90, 100]), max_len=100, buffer=20, factor=1.0)
    assert got.tolist() == pytest.approx([0.0, 0.0, -0.5, -1.0])
    assert overlong_penalty(torch.tensor([100]), 100, 0).tolist() == [0.0]


def test_informative_groups_drop_constant_ones():
    rewards = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0, -1.0, 1.0, -1.0, 0.5])
    ids = [0, 0, 1, 1, 2, 2, 3, 3, 4]
    assert informative_groups(rewards, ids) == [1, 3, 4]  # 0 all right, 2 all wrong; 4 is a group of one

"""The loss family beside DAPO against verl's own registered policy losses (frozen in verl_dapo.json by
tests/fixtures/make_verl_fixture.py): loss value, gradient w.r.t. the log-probs, clip fraction; and by hand."""

import json
import math
from pathlib import Path

import pytest
import torch

from mathfirst.config import RLConfig
from mathfirst.rl.dapo import group_advantages
from mathfirst.rl.loss_registry import LOSSES, LossSettings
from mathfirst.rl.losses import cispo_loss, gspo_loss, objective

VERL = json.loads((Path(__file__).parents[1] / "fixtures" / "verl_dapo.json").read_text())
CASES = {  # fixture case: (our loss, advantages key, clip low, clip high, aggregation, horizon)
    "grpo": ("grpo", "advantages", 0.2, 0.2, "seq-mean-token-mean", None),
    "dr_grpo": ("dr_grpo", "advantages_no_std", 0.2, 0.2, "seq-mean-token-sum-norm", 16),
    "gspo": ("gspo", "advantages", 3e-4, 4e-4, "seq-mean-token-mean", None),
    "gspo_wide": ("gspo", "advantages", 0.2, 0.28, "token-mean", None),
    "cispo": ("cispo", "advantages", 1.0, 0.28, "token-mean", None),
    "cispo_two_sided": ("cispo", "advantages", 0.2, 0.28, "seq-mean-token-mean", None),
}


def inputs():
    x = VERL["inputs"]
    return {k: torch.tensor(v) for k, v in x.items() if k != "group_ids"}


@pytest.mark.parametrize("case", CASES)
def test_each_loss_matches_verl_in_value_gradient_and_clip_fraction(case):
    loss_name, adv_key, low, high, agg, horizon = CASES[case]
    t = inputs()
    logp = t["logp"].clone().requires_grad_(True)
    adv = torch.tensor(VERL[adv_key])
    loss, stats = objective(loss_name, logp, t["old_logp"], adv, t["mask"], LossSettings(low, high, 3.0, agg, horizon))
    loss.backward()
    ref = VERL["losses"][case]
    assert loss.item() == pytest.approx(ref["loss"], abs=1e-6)
    torch.testing.assert_close(logp.grad, torch.tensor(ref["grad"]), atol=1e-6, rtol=1e-5)
    assert stats["clip_frac"] == pytest.approx(ref["clip_frac"], abs=1e-6)
    assert stats["ppo_kl"] == pytest.approx(ref["ppo_kl"], abs=1e-6)


def test_dr_grpo_advantages_skip_the_std_as_verl_does():
    t = inputs()
    adv = group_advantages(t["rewards"], VERL["inputs"]["group_ids"], norm_by_std=False)
    assert torch.allclose(adv, torch.tensor(VERL["advantages_no_std"]), atol=1e-6)


def test_gspo_gives_every_token_its_sequences_ratio_by_hand():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.0, 4.0]])).requires_grad_(True)  # sequence ratio sqrt(1 * 4) = 2
    loss, stats = gspo_loss(new, old, torch.tensor([1.0]), torch.ones(1, 2), LossSettings(0.5, 0.5))
    assert loss.item() == pytest.approx(-1.5)  # clipped to 1 + 0.5 for both tokens
    assert stats["clip_frac"] == 1.0
    loss, _ = gspo_loss(new, old, torch.tensor([1.0]), torch.ones(1, 2), LossSettings(0.5, 2.0))
    loss.backward()
    assert loss.item() == pytest.approx(-2.0) and new.grad[0].tolist() == pytest.approx([-1.0, -1.0])


def test_cispo_keeps_clipped_tokens_in_the_gradient_by_hand():
    old = torch.zeros(1, 1)
    new = torch.log(torch.tensor([[3.0]])).requires_grad_(True)  # ratio 3, clipped to 1.28
    loss, stats = cispo_loss(new, old, torch.tensor([1.0]), torch.ones(1, 1), LossSettings(1.0, 0.28))
    loss.backward()
    assert loss.item() == pytest.approx(-1.28 * math.log(3.0))
    assert new.grad.item() == pytest.approx(-1.28)  # PPO's clip would give this token no gradient at all
    assert stats["clip_frac"] == 1.0


def test_a_loss_fills_its_own_settings_unless_the_stage_sets_them():
    assert RLConfig(steps=1).clip_high == 0.28
    gspo = RLConfig(steps=1, loss="gspo")
    assert (gspo.clip_low, gspo.clip_high, gspo.loss_agg) == (3e-4, 4e-4, "seq-mean-token-mean")
    dr = RLConfig(steps=1, loss="dr_grpo", clip_high=0.3)
    assert (dr.norm_adv_by_std, dr.loss_agg, dr.clip_high) == (False, "seq-mean-token-sum-norm", 0.3)
    assert RLConfig(steps=1, loss="grpo").kl_coef == 0.001
    assert set(LOSSES) == {"dapo", "grpo", "dr_grpo", "gspo", "cispo"}


def test_every_registered_loss_has_its_function_and_the_config_does_not_import_torch():
    import subprocess
    import sys

    import mathfirst.rl.losses as losses

    assert all(callable(getattr(losses, spec.function, None)) for spec in LOSSES.values())
    probe = "import sys, mathfirst.config; print('torch' in sys.modules, 'urllib.request' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]

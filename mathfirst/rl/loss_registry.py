"""The policy losses an RL stage can name (`loss:`), one entry each: its function in rl/losses.py, the stage
settings it defines (which a config may still override), verl's `policy_loss.loss_mode` for it and its line in
docs/dapo.md's losses table (generated from here). Torch-free, since the config reads it to check a YAML file.
Adding a loss is an entry here, its function and its test."""

from __future__ import annotations

from dataclasses import dataclass

LOSS_AGGS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")
LOSS_AGG_NOTES = {"seq-mean-token-sum-norm": "token sums / `max_new_tokens`"}  # said beside it in docs/dapo.md
KL_ESTIMATOR_NAMES = {"kl": "k1", "mse": "k2", "low_var_kl": "k3"}  # verl's kl_loss_type -> Schulman's k1-k3
KL_ESTIMATORS = tuple(KL_ESTIMATOR_NAMES)  # what `kl_estimator:` accepts (the config reads it here)


@dataclass(frozen=True)
class LossSpec:
    function: str  # its function's name in mathfirst.rl.losses
    defaults: dict[str, object]  # the RL-stage settings it defines
    verl_mode: str  # verl's actor.policy_loss.loss_mode
    objective: str  # its one line in the losses table of docs/dapo.md (mathfirst/config_docs.py writes it)
    origin: str = ""  # who introduced or uses it, beside its name in that table


LOSSES: dict[str, LossSpec] = {
    "dapo": LossSpec("clipped_loss", {"clip_low": 0.2, "clip_high": 0.28, "loss_agg": "token-mean",
                                      "norm_adv_by_std": True}, "vanilla",
                     objective="PPO clip with clip-higher and dual clip"),
    "grpo": LossSpec("clipped_loss", {"clip_low": 0.2, "clip_high": 0.2, "loss_agg": "seq-mean-token-mean",
                                      "norm_adv_by_std": True, "kl_coef": 0.001, "kl_estimator": "low_var_kl"},
                     "vanilla", objective="PPO clip with dual clip", origin="DeepSeek-R1"),
    "dr_grpo": LossSpec("clipped_loss", {"clip_low": 0.2, "clip_high": 0.2, "loss_agg": "seq-mean-token-sum-norm",
                                         "norm_adv_by_std": False}, "vanilla",
                        objective="PPO clip with dual clip"),
    "gspo": LossSpec("gspo_loss", {"clip_low": 3e-4, "clip_high": 4e-4, "loss_agg": "seq-mean-token-mean",
                                   "norm_adv_by_std": True}, "gspo",
                     objective="a response's tokens share its ratio exp(mean log(pi / pi_old)), clipped",
                     origin="Qwen3"),
    "cispo": LossSpec("cispo_loss", {"clip_low": 1.0, "clip_high": 0.28, "loss_agg": "token-mean",
                                     "norm_adv_by_std": True}, "cispo",
                      objective="-sg(clip(ratio)) x A x log pi: clipped tokens keep their gradient",
                      origin="MiniMax-M1"),
}  # fmt: skip
LOSS_NAMES = tuple(LOSSES)
DAPO = LOSSES["dapo"].defaults
DUAL_CLIP = 3.0  # verl's clip_ratio_c: the bound on -A * ratio for negative advantages


@dataclass(frozen=True)
class LossSettings:
    """What a policy loss reads from its stage: the clip range, the dual clip, the aggregation, and the
    constant horizon of the token-sum aggregations (the stage's max_new_tokens)."""

    clip_low: float = DAPO["clip_low"]  # type: ignore[assignment]
    clip_high: float = DAPO["clip_high"]  # type: ignore[assignment]
    clip_c: float = DUAL_CLIP
    agg: str = "token-mean"
    horizon: int | None = None

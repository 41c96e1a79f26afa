"""The policy-loss family beside DAPO, each a pure tensor function matching verl's `core_algos.py`:
GRPO (DeepSeek-R1: symmetric clip, sequence-mean aggregation, a KL term), Dr. GRPO (no std normalisation,
token sums over a constant horizon), GSPO (Qwen3: a sequence-level importance ratio, tight clips) and CISPO
(MiniMax-M1: the clipped importance weight as a stop-gradient coefficient of log pi). A `loss:` key picks one
and fills the settings it defines (rl/loss_registry.py), which a config may still override."""

from __future__ import annotations

import torch

from mathfirst.rl.dapo import agg_loss, policy_loss
from mathfirst.rl.loss_registry import LOSSES, LossSettings

T = torch.Tensor  # every loss: (log-probs, old log-probs, advantages, mask, settings) -> (loss, statistics)


def _per_token(advantages: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return advantages[:, None].expand_as(like) if advantages.dim() == 1 else advantages


def _stats(clipped: torch.Tensor, log_ratio: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    fmask = mask.to(log_ratio.dtype)
    n = fmask.sum().clamp(min=1)
    return {"clip_frac": float((clipped * fmask).sum() / n), "ppo_kl": float((-log_ratio.detach() * fmask).sum() / n)}


def gspo_loss(logp: T, old_logp: T, advantages: T, mask: T, s: LossSettings) -> tuple[T, dict[str, float]]:
    """GSPO: every token of a response shares its sequence's ratio exp(mean_t log(pi / pi_old)), clipped to
    [1 - clip_low, 1 + clip_high]; the gradient flows through each token's own log-prob."""
    advantages = _per_token(advantages, logp)
    log_ratio = logp - old_logp
    seq_log_ratio = (log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    token_log_ratio = (logp - logp.detach() + seq_log_ratio.detach()[:, None]).clamp(max=10.0)
    ratio = torch.exp(token_log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - s.clip_low, 1 + s.clip_high)
    loss_mat = torch.maximum(unclipped, clipped)
    with torch.no_grad():
        stats = _stats((clipped > unclipped).to(logp.dtype), log_ratio, mask)
    return agg_loss(loss_mat, mask, s.agg, s.horizon), stats


def cispo_loss(logp: T, old_logp: T, advantages: T, mask: T, s: LossSettings) -> tuple[T, dict[str, float]]:
    """CISPO: -sg(clip(ratio, 1 - clip_low, 1 + clip_high)) * A * log pi. No token is dropped from the
    gradient; the clip bounds only how much one counts (clip_low 1.0: no lower bound, as in MiniMax-M1)."""
    advantages = _per_token(advantages, logp)
    log_ratio = (logp - old_logp).clamp(-20.0, 20.0)
    ratio = torch.exp(log_ratio)
    weight = ratio.clamp(1 - s.clip_low, 1 + s.clip_high)
    loss_mat = -weight.detach() * advantages * logp
    with torch.no_grad():
        stats = _stats((ratio != weight).to(logp.dtype), log_ratio, mask)
    return agg_loss(loss_mat, mask, s.agg, s.horizon), stats


def clipped_loss(logp: T, old_logp: T, advantages: T, mask: T, s: LossSettings) -> tuple[T, dict[str, float]]:
    """PPO's clipped objective with clip-higher and the dual clip (DAPO, GRPO and Dr. GRPO: they differ in
    settings)."""
    return policy_loss(logp, old_logp, advantages, mask, s.clip_low, s.clip_high, s.clip_c, s.agg, s.horizon)


def objective(loss: str, logp: T, old_logp: T, advantages: T, mask: T, s: LossSettings) -> tuple[T, dict[str, float]]:
    """The policy loss `loss` names, through its registry entry."""
    return globals()[LOSSES[loss].function](logp, old_logp, advantages, mask, s)

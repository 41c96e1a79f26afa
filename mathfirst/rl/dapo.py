"""DAPO's pieces as pure tensor functions: group advantages, clip-higher loss, loss aggregation, overlong
shaping, dynamic-sampling filter and the optional KL term. Each matches verl's `core_algos.py` on equal inputs."""

from __future__ import annotations

from typing import Literal

import torch

from mathfirst.rl.loss_registry import DAPO, DUAL_CLIP, LOSS_AGGS

LossAgg = Literal[LOSS_AGGS]  # type: ignore[valid-type]


def group_advantages(
    rewards: torch.Tensor, group_ids: list, eps: float = 1e-6, norm_by_std: bool = True
) -> torch.Tensor:
    """(r - mean) / (std + eps) within each prompt's group (unbiased std); a group of one has mean 0, std 1.
    Without `norm_by_std` (Dr. GRPO) only the mean is subtracted."""
    adv = torch.empty_like(rewards, dtype=torch.float32)
    for gid in dict.fromkeys(group_ids):
        idx = torch.tensor([i for i, g in enumerate(group_ids) if g == gid])
        r = rewards[idx].float()
        if len(idx) == 1:
            adv[idx] = r / (1 + eps) if norm_by_std else r
        else:
            adv[idx] = (r - r.mean()) / (r.std() + eps if norm_by_std else 1.0)
    return adv


def agg_loss(
    loss_mat: torch.Tensor, mask: torch.Tensor, mode: LossAgg = "token-mean", horizon: int | None = None
) -> torch.Tensor:
    """Reduce a (batch, tokens) loss to a scalar: DAPO's token-level mean, or a mean over sequences;
    seq-mean-token-sum-norm (Dr. GRPO) divides the token sums by a constant `horizon` (the longest response
    allowed; verl's loss_scale_factor, defaulting to the padded width)."""
    mask = mask.to(loss_mat.dtype)
    if mode == "token-mean":
        return (loss_mat * mask).sum() / mask.sum().clamp(min=1)
    per_seq_tokens = mask.sum(-1)
    seq_sum = (loss_mat * mask).sum(-1)
    has_tokens = (per_seq_tokens > 0).to(loss_mat.dtype)
    if mode == "seq-mean-token-mean":
        per_seq = seq_sum / (per_seq_tokens + 1e-8)
    elif mode == "seq-mean-token-sum":
        per_seq = seq_sum
    elif mode == "seq-mean-token-sum-norm":
        per_seq = seq_sum / (horizon or loss_mat.shape[-1])
    else:
        raise ValueError(f"unknown loss aggregation {mode!r}")
    return (per_seq * has_tokens).sum() / has_tokens.sum().clamp(min=1)


def agg_units(mask: torch.Tensor, mode: LossAgg = "token-mean") -> torch.Tensor:
    """What `agg_loss` divides by: tokens (token-mean) or sequences with tokens. Splitting a batch into parts
    and weighting each part's `agg_loss` by its share of these units gives the whole batch's loss exactly."""
    return mask.sum() if mode == "token-mean" else (mask.sum(-1) > 0).sum()


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = DAPO["clip_low"],  # type: ignore[assignment]
    clip_high: float = DAPO["clip_high"],  # type: ignore[assignment]
    clip_c: float = DUAL_CLIP,
    agg: LossAgg = "token-mean",
    horizon: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped objective with clip-higher (ratio kept in [1 - clip_low, 1 + clip_high]) and verl's
    dual clip at `clip_c` for negative advantages. `advantages` is per token or per sequence."""
    if advantages.dim() == 1:
        advantages = advantages[:, None].expand_as(logp)
    log_ratio = (logp - old_logp).clamp(-20.0, 20.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_low, 1 + clip_high)
    loss_mat = torch.maximum(unclipped, clipped)
    dual = torch.minimum(-advantages * clip_c, loss_mat)
    loss_mat = torch.where(advantages < 0, dual, loss_mat)
    with torch.no_grad():
        fmask = mask.to(logp.dtype)
        n = fmask.sum().clamp(min=1)
        stats = {
            "clip_frac": float(((clipped > unclipped).to(logp.dtype) * fmask).sum() / n),
            "ppo_kl": float((-log_ratio * fmask).sum() / n),
        }
    return agg_loss(loss_mat, mask, agg, horizon), stats


def outcome_rewards(scores: list[float]) -> list[float]:
    """DAPO's rule-based reward: +1 for a response the verifier accepts, -1 otherwise."""
    return [1.0 if s > 0 else -1.0 for s in scores]


def overlong_penalty(lengths: torch.Tensor, max_len: int, buffer: int, factor: float = 1.0) -> torch.Tensor:
    """DAPO's soft overlong punishment: 0 up to max_len - buffer, then falling linearly to -factor at max_len."""
    if buffer <= 0:
        return torch.zeros_like(lengths, dtype=torch.float32)
    exceed = lengths.float() - (max_len - buffer)
    return (-exceed / buffer * factor).clamp(max=0.0)


def informative_groups(rewards: torch.Tensor, group_ids: list) -> list:
    """Dynamic sampling: the groups whose rewards are not all equal (the others give zero advantage).
    As in verl, a group of a single response is kept."""
    keep = []
    for gid in dict.fromkeys(group_ids):
        r = rewards[[i for i, g in enumerate(group_ids) if g == gid]]
        if len(r) == 1 or bool((r != r[0]).any()):
            keep.append(gid)
    return keep


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "low_var_kl") -> torch.Tensor:
    """Per-token KL estimate to a reference policy: k1 (`kl`), k2 (`mse`) or k3 (`low_var_kl`), as in verl."""
    if kind in ("kl", "k1"):
        return logp - ref_logp
    if kind in ("mse", "k2"):
        return 0.5 * (logp - ref_logp).square()
    if kind in ("low_var_kl", "k3"):
        kl = (ref_logp - logp).clamp(-20, 20)
        return (torch.exp(kl) - kl - 1).clamp(-10, 10)
    raise ValueError(f"unknown KL estimator {kind!r}")

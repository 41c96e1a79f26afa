"""Optimizers of the supervised stages: AdamW, or Muon for the hidden matrices with AdamW for the rest."""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from transformers import PreTrainedModel

from mathfirst.config import TrainConfig
from mathfirst.model import trainable

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # the quintic Newton-Schulz iteration of Keller Jordan's Muon
NS_STEPS = 5


def orthogonalize(updates: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Newton-Schulz iteration towards the nearest semi-orthogonal matrix (U V^T of each update's SVD), for a
    stack of same-shape matrices at once and in fp32: torch.optim.Muon takes one matrix at a time, in bf16,
    which on a CPU makes a tiny model's step several times slower."""
    a, b, c = NS_COEFFICIENTS
    wide = updates.size(-2) <= updates.size(-1)
    x = updates.float() if wide else updates.float().mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)
    for _ in range(NS_STEPS):
        gram = x @ x.mT
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return (x if wide else x.mT).to(updates.dtype)


class MuonAdamW(torch.optim.Optimizer):
    """Muon (https://kellerjordan.github.io/posts/muon/) on the groups marked `muon`, AdamW on the others.

    Muon's step is scaled to the RMS of an AdamW step (0.2 * sqrt(max(rows, cols)), torch's "match_rms_adamw"),
    so one learning rate and one schedule serve both kinds of group."""

    def __init__(
        self,
        groups: list[dict],
        lr: float,
        weight_decay: float,
        betas: tuple[float, float] = (0.9, 0.95),
        momentum: float = 0.95,
    ):
        super().__init__(groups, dict(lr=lr, weight_decay=weight_decay, betas=betas, momentum=momentum, muon=False))

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # no closure: the loss is computed before the step
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                p.mul_(1 - group["lr"] * group["weight_decay"])
            if group["muon"]:
                self._muon_update(params, group)
            else:
                for p in params:
                    self._adamw_update(p, group)

    def _muon_update(self, params: list[torch.Tensor], group: dict) -> None:
        """Nesterov momentum, then each matrix's update orthogonalized, same shapes in one batch."""
        by_shape: dict[torch.Size, list[tuple[torch.Tensor, torch.Tensor]]] = defaultdict(list)
        for p in params:
            state = self.state[p]
            if not state:
                state["momentum"] = torch.zeros_like(p)
            buf = state["momentum"].lerp_(p.grad, 1 - group["momentum"])
            by_shape[p.shape].append((p, p.grad.lerp(buf, group["momentum"])))
        for shape, pairs in by_shape.items():
            updates = orthogonalize(torch.stack([nesterov for _, nesterov in pairs]))
            for (p, _), update in zip(pairs, updates):
                p.add_(update, alpha=-group["lr"] * 0.2 * math.sqrt(max(shape)))

    def _adamw_update(self, p: torch.Tensor, group: dict) -> None:
        state = self.state[p]
        if not state:
            state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        beta1, beta2 = group["betas"]
        state["step"] += 1
        state["exp_avg"].lerp_(p.grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        mean = state["exp_avg"] / (1 - beta1 ** state["step"])
        rms = (state["exp_avg_sq"] / (1 - beta2 ** state["step"])).sqrt_().add_(1e-8)
        p.addcdiv_(mean, rms, value=-group["lr"])


def hidden_matrices(model: PreTrainedModel) -> list[torch.nn.Parameter]:
    """The 2-D weights inside the network: every matrix but the embedding tables and the output head."""
    tables = [m.weight for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    if model.get_output_embeddings() is not None:
        tables.append(model.get_output_embeddings().weight)
    skip = {id(t) for t in tables}
    return [p for p in trainable(model) if p.ndim == 2 and id(p) not in skip]


def make_optimizer(model: PreTrainedModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(trainable(model), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.adam_betas)
    hidden = hidden_matrices(model)
    muon_ids = {id(p) for p in hidden}
    rest = [p for p in trainable(model) if id(p) not in muon_ids]
    groups = [dict(params=hidden, muon=True), dict(params=rest, muon=False)]
    return MuonAdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.adam_betas)

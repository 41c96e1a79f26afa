"""Log-probs of chosen tokens from a model's last hidden states, with the output head applied a chunk of tokens
at a time: the full-vocabulary logits (49k-152k wide, in fp32) exist for one chunk only, and in training they are
recomputed in the backward instead of kept."""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel

LOGITS_CHUNK = 1024  # tokens whose full-vocabulary logits exist at once
HEAD_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")  # heads that are not one matmul


def hidden_states(model: PreTrainedModel, **inputs: torch.Tensor) -> torch.Tensor:
    """The last hidden states [B, T, H] of a causal LM, before its output head."""
    for name in HEAD_TRANSFORMS:
        if getattr(model.config, name, None) not in (None, 1.0):
            raise ValueError(f"{model.config.model_type}: its output head applies {name}, which is not supported")
    return model.get_decoder()(**inputs).last_hidden_state


def _chunk_logprobs(
    head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    logp_all = torch.log_softmax(head(hidden).float() / temperature, -1)
    with torch.no_grad():
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp_all.gather(-1, targets[:, None])[:, 0], entropy


def head_logprobs(
    model: PreTrainedModel, hidden: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each target token under softmax(head(hidden) / T), and the entropy there (no gradient);
    hidden [N, H], targets [N]."""
    head = model.get_output_embeddings()
    grad = torch.is_grad_enabled() and hidden.requires_grad
    logp, entropy = [], []
    for start in range(0, len(targets), LOGITS_CHUNK):
        args = (head, hidden[start : start + LOGITS_CHUNK], targets[start : start + LOGITS_CHUNK], temperature)
        lp, ent = checkpoint(_chunk_logprobs, *args, use_reentrant=False) if grad else _chunk_logprobs(*args)
        logp.append(lp)
        entropy.append(ent)
    if not logp:
        return hidden.new_zeros(0, dtype=torch.float32), hidden.new_zeros(0, dtype=torch.float32)
    return torch.cat(logp), torch.cat(entropy)

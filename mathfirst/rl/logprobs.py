"""Log-probs of chosen tokens from a model's last hidden states, with the output head applied a chunk of tokens
at a time. In training each chunk's softmax is kept for the backward when all of them fit in KEPT_LOGITS_BYTES,
else only one chunk's full-vocabulary logits (49k-152k wide, in fp32) exist at once and the backward recomputes
them (one more matmul); either way they become their gradient in place, d log p / d z = onehot - p."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

LOGITS_CHUNK = 1024  # tokens whose full-vocabulary logits are computed at once
KEPT_LOGITS_BYTES = 2**29  # the most a micro-batch's kept softmax may take; past it the backward recomputes
HEAD_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")  # heads that are not one matmul


def hidden_states(model: PreTrainedModel, **inputs: torch.Tensor) -> torch.Tensor:
    """The last hidden states [B, T, H] of a causal LM, before its output head."""
    for name in HEAD_TRANSFORMS:
        if getattr(model.config, name, None) not in (None, 1.0):
            raise ValueError(f"{model.config.model_type}: its output head applies {name}, which is not supported")
    return model.get_decoder()(**inputs).last_hidden_state


def _logits(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, temperature: float, dtype: torch.dtype
) -> torch.Tensor:
    """(hidden W^T + b) / T in fp32 at least, the matmul in `dtype`."""
    with torch.autocast(hidden.device.type, enabled=False):
        bias = None if bias is None else bias.to(dtype)
        logits = torch.nn.functional.linear(hidden.to(dtype), weight.to(dtype), bias)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return logits.div_(temperature) if temperature != 1.0 else logits


class ChunkLogprobs(torch.autograd.Function):
    """One chunk's target log-probs (differentiable) and entropies (not), in as few passes over the [N, V]
    logits as they take (a fresh [N, V] tensor costs its page faults too); saves the softmax (`keep`) or only
    the chunk's inputs and each row's log-normaliser."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, dtype, keep):
        shifted = _logits(hidden, weight, bias, temperature, dtype)
        top = shifted.amax(-1, keepdim=True)
        shifted.sub_(top)  # z - max z, in place
        e = torch.exp(shifted)
        total = e.sum(-1)
        log_total = total.log()
        entropy = log_total - torch.linalg.vecdot(e, shifted) / total  # -sum p log p, p = e / total
        logp = shifted.gather(-1, targets[:, None])[:, 0] - log_total
        kept = e.div_(total[:, None]) if keep else None
        ctx.save_for_backward(hidden, weight, bias, targets, top[:, 0] + log_total, kept)
        ctx.temperature, ctx.dtype = temperature, dtype
        ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, _grad_entropy):
        hidden, weight, bias, targets, log_norm, kept = ctx.saved_tensors
        # d logp[i] / d z[i, v] = (onehot(target) - p)[v] / T, scaled by the incoming gradient, built in place
        if kept is None:
            grad = _logits(hidden, weight, bias, ctx.temperature, ctx.dtype).sub_(log_norm[:, None]).exp_()
        else:
            grad = kept
        scale = grad_logp.to(grad.dtype) / ctx.temperature
        grad.mul_(-scale[:, None]).scatter_add_(-1, targets[:, None], scale[:, None])
        grad = grad.to(ctx.dtype)
        with torch.autocast(hidden.device.type, enabled=False):
            need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
            grad_hidden = (grad @ weight.to(ctx.dtype)).to(hidden.dtype) if need_hidden else None
            grad_weight = (grad.T @ hidden.to(ctx.dtype)).to(weight.dtype) if need_weight else None
            grad_bias = grad.sum(0).to(bias.dtype) if need_bias else None
        return grad_hidden, grad_weight, grad_bias, None, None, None, None


def head_logprobs(
    model: PreTrainedModel, hidden: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each target token under softmax(head(hidden) / T), and the entropy there (no gradient);
    hidden [N, H], targets [N]."""
    head = model.get_output_embeddings()
    if type(head) is not torch.nn.Linear:
        raise ValueError(f"the output head is a {type(head).__name__}: only a plain Linear is supported (no LoRA)")
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else head.weight.dtype
    keep = torch.is_grad_enabled() and hidden.requires_grad and kept_logits_bytes(len(targets), head.out_features) > 0
    logp, entropy = [], []
    for start in range(0, len(targets), LOGITS_CHUNK):
        chunk = (hidden[start : start + LOGITS_CHUNK], targets[start : start + LOGITS_CHUNK])
        lp, ent = ChunkLogprobs.apply(chunk[0], head.weight, head.bias, chunk[1], temperature, dtype, keep)
        logp.append(lp)
        entropy.append(ent)
    if not logp:
        return hidden.new_zeros(0, dtype=torch.float32), hidden.new_zeros(0, dtype=torch.float32)
    return torch.cat(logp), torch.cat(entropy)


def kept_logits_bytes(tokens: int, vocab: int) -> int:
    """What the softmax kept for the backward of `tokens` scored tokens takes (0: not kept, recomputed)."""
    size = tokens * vocab * 4
    return size if size <= KEPT_LOGITS_BYTES else 0

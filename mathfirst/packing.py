"""Log-probs of responses for the DAPO update. A micro-batch packs each prompt once, followed by all of its
responses, under an attention mask that lets a response see the prompt and itself only: a prompt's forward and
backward are shared by its whole group, and nothing is padded but the packed sequences."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from mathfirst.logprobs import head_logprobs, hidden_states


def prompt_chunks(batch: dict[str, torch.Tensor], groups: list[int], group_size: int, rows: int) -> list[torch.Tensor]:
    """The batch rows of each group in chunks of at most `rows` responses to one prompt; rows with nothing in
    the loss are left out."""
    chunks = []
    for g in groups:
        members = torch.arange(g * group_size, (g + 1) * group_size)
        members = members[batch["mask"][members].any(-1)]
        if len(members):
            prompt_len = int(batch["prompt_len"][members[0]])
            prompts = batch["ids"][members, :prompt_len]
            if (batch["prompt_len"][members] != prompt_len).any() or not (prompts == prompts[:1]).all():
                raise ValueError(f"group {g}: its responses do not share one prompt")
            chunks += list(members.split(rows))
    return chunks


def packed_length(batch: dict[str, torch.Tensor], chunk: torch.Tensor) -> int:
    """Tokens of a chunk packed as one sequence: its prompt once, then every response."""
    return int(batch["prompt_len"][chunk[0]] + batch["response_len"][chunk].sum())


def pack_chunks(batch: dict[str, torch.Tensor], chunks: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """One sequence per chunk: its prompt, then each of its responses at the positions it had after the prompt.
    Returns the ids, positions, attention mask (a response sees the prompt and itself only), and per response
    row its sequence, the positions whose logits predict its tokens, and the positions of those tokens."""
    width = max(packed_length(batch, c) for c in chunks)
    source = batch["ids"].cpu()  # built on the host: one copy, not one per row
    prompt_lens, response_lens = batch["prompt_len"].tolist(), batch["response_len"].tolist()
    ids = torch.zeros((len(chunks), width), dtype=torch.long)
    position = torch.zeros((len(chunks), width), dtype=torch.long)
    segment = torch.full((len(chunks), width), -1)  # which response a token belongs to; -1: the prompt
    reads = []
    for k, chunk in enumerate(chunks):
        rows = chunk.tolist()
        p = prompt_lens[rows[0]]
        ids[k, :p], position[k, :p] = source[rows[0], :p], torch.arange(p)
        at = p
        for j, row in enumerate(rows):
            n = response_lens[row]
            ids[k, at : at + n], position[k, at : at + n] = source[row, p : p + n], torch.arange(p, p + n)
            segment[k, at : at + n] = j
            reads.append((k, [p - 1, *range(at, at + n - 1)], list(range(at, at + n))))
            at += n
    same = (segment[:, None, :] == -1) | (segment[:, None, :] == segment[:, :, None])
    allowed = (torch.ones(width, width, dtype=torch.bool).tril() & same) | torch.eye(width, dtype=torch.bool)
    longest = max(len(r[1]) for r in reads)
    seq = torch.tensor([[k] * longest for k, _, _ in reads])
    predict = torch.tensor([pos + [0] * (longest - len(pos)) for _, pos, _ in reads])
    tokens = torch.tensor([pos + [0] * (longest - len(pos)) for _, _, pos in reads])
    return ids, position, allowed, seq, predict, tokens


def shared_prompt_logprobs(
    model: PreTrainedModel, batch: dict[str, torch.Tensor], chunks: list[torch.Tensor], temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and entropies (no gradient) of the responses of `chunks`, one row per response, from its first
    token on: a prompt goes through the model once for all its responses, nothing is padded to a common length
    but the packed sequences, and the output head sees only the response tokens (a chunk of them at a time)."""
    ids, position, allowed, seq, predict, tokens = (t.to(model.device) for t in pack_chunks(batch, chunks))
    bias = torch.zeros(allowed.shape, device=model.device).masked_fill(~allowed, torch.finfo(torch.float32).min)
    hidden = hidden_states(model, input_ids=ids, attention_mask=bias[:, None], position_ids=position)
    lengths = batch["response_len"][torch.cat(chunks)].to(model.device)
    real = torch.arange(seq.shape[1], device=model.device) < lengths[:, None]  # a response's own tokens
    logp, entropy = head_logprobs(model, hidden[seq[real], predict[real]], ids[seq[real], tokens[real]], temperature)
    out = torch.zeros(seq.shape, device=model.device, dtype=logp.dtype)
    return out.masked_scatter(real, logp), torch.zeros_like(out).masked_scatter(real, entropy)


def micro_batches(batch: dict[str, torch.Tensor], chunks: list[torch.Tensor], rows: int) -> list[list[torch.Tensor]]:
    """Chunks of similar packed length holding up to `rows` responses together (at least one chunk each)."""
    out: list[list[torch.Tensor]] = []
    for chunk in sorted(chunks, key=lambda c: packed_length(batch, c)):
        if out and sum(map(len, out[-1])) + len(chunk) <= rows:
            out[-1].append(chunk)
        else:
            out.append([chunk])
    return out

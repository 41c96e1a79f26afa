"""Log-probs of responses for the DAPO update. A micro-batch packs each prompt once, followed by all of its
responses; its attention (`packed_attention`) lets a response see the prompt and itself only and computes nothing
else. A prompt's forward and backward are shared by its whole group, and nothing is padded but the packed
sequences."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, PreTrainedModel

from mathfirst.rl.logprobs import head_logprobs, hidden_states

PACKED = "mathfirst_packed"  # the attention implementation registered below

Segments = list[tuple[int, list[tuple[int, int]]]]  # per packed sequence: its prompt's length, its responses' spans


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
    Returns the ids, positions, per response row its sequence, the positions whose logits predict its tokens
    and the positions of those tokens, and each sequence's segments (for `packed_attention`)."""
    width = max(packed_length(batch, c) for c in chunks)
    source = batch["ids"].cpu()  # built on the host: one copy, not one per row
    prompt_lens, response_lens = batch["prompt_len"].tolist(), batch["response_len"].tolist()
    ids = torch.zeros((len(chunks), width), dtype=torch.long)
    position = torch.zeros((len(chunks), width), dtype=torch.long)
    reads, segments = [], []
    for k, chunk in enumerate(chunks):
        rows = chunk.tolist()
        p = prompt_lens[rows[0]]
        ids[k, :p], position[k, :p] = source[rows[0], :p], torch.arange(p)
        at = p
        segments.append((p, []))
        for row in rows:
            n = response_lens[row]
            ids[k, at : at + n], position[k, at : at + n] = source[row, p : p + n], torch.arange(p, p + n)
            segments[-1][1].append((at, at + n))
            reads.append((k, [p - 1, *range(at, at + n - 1)], list(range(at, at + n))))
            at += n
    longest = max(len(r[1]) for r in reads)
    seq = torch.tensor([[k] * longest for k, _, _ in reads])
    predict = torch.tensor([pos + [0] * (longest - len(pos)) for _, pos, _ in reads])
    tokens = torch.tensor([pos + [0] * (longest - len(pos)) for _, _, pos in reads])
    return ids, position, seq, predict, tokens, segments


def shared_prompt_logprobs(
    model: PreTrainedModel, batch: dict[str, torch.Tensor], chunks: list[torch.Tensor], temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and entropies (no gradient) of the responses of `chunks`, one row per response, from its first
    token on: a prompt goes through the model once for all its responses, nothing is padded to a common length
    but the packed sequences, and the output head sees only the response tokens (a chunk of them at a time)."""
    *tensors, segments = pack_chunks(batch, chunks)
    ids, position, seq, predict, tokens = (t.to(model.device) for t in tensors)
    with attention(model, PACKED):
        hidden = hidden_states(model, input_ids=ids, position_ids=position, packed_segments=segments)
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


def packed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    packed_segments: Segments | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Attention over packed sequences that computes only the blocks a token may see: the prompt causally over
    itself, each response over the prompt and causally over itself (the dense mask's other blocks are never
    computed). query [B, heads, W, D], key and value [B, kv_heads, W, D]; returns [B, W, heads, D]."""
    rows = []
    options = {"dropout_p": dropout, "scale": scaling, "enable_gqa": True}
    for b, (prompt, spans) in enumerate(packed_segments):
        q, k, v = query[b : b + 1], key[b : b + 1], value[b : b + 1]
        prompt_qkv = (q[:, :, :prompt], k[:, :, :prompt], v[:, :, :prompt])
        pieces = [F.scaled_dot_product_attention(*prompt_qkv, is_causal=True, **options)]
        for start, end in spans:
            keys = torch.cat([k[:, :, :prompt], k[:, :, start:end]], 2)
            values = torch.cat([v[:, :, :prompt], v[:, :, start:end]], 2)
            sees = torch.ones(end - start, prompt + end - start, dtype=torch.bool, device=q.device).tril(prompt)
            pieces.append(F.scaled_dot_product_attention(q[:, :, start:end], keys, values, attn_mask=sees, **options))
        padding = query.shape[2] - (spans[-1][1] if spans else prompt)
        pieces.append(q.new_zeros(1, q.shape[1], padding, q.shape[3]))
        rows.append(torch.cat(pieces, 2))
    return torch.cat(rows).transpose(1, 2).contiguous(), None


AttentionInterface.register(PACKED, packed_attention)


@contextlib.contextmanager
def attention(model: PreTrainedModel, implementation: str) -> Iterator[None]:
    """The model's attention implementation switched for the duration of the block."""
    before = model.config._attn_implementation
    model.config._attn_implementation = implementation
    try:
        yield
    finally:
        model.config._attn_implementation = before

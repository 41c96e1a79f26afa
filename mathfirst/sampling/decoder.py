"""A lean forward pass for Llama-family decoders (Llama, Qwen2, Qwen3) over a preallocated KV cache.

It reads the HF model's own weights (q/k/v and gate/up fused into one matmul each) and makes a handful
of tensor calls per layer, so sampling with small models is bound by arithmetic, not by Python.
Models it cannot reproduce exactly (other architectures, sliding windows, dynamic RoPE) get `None`
from `StaticDecoder.build` and are sampled through the HF forward instead. On a CPU in fp32, for models past the
tiny one, its weight copies are in oneDNN's blocked layout, whose small-batch matmuls run faster than F.linear's
(docs/speed.md)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from mathfirst.train.lora import effective_weight

ARCHITECTURES = {"llama", "qwen2", "qwen3"}
ROPE_TYPES = {"default", "linear", "llama3", "yarn"}  # the ones whose frequencies do not depend on length


@dataclass
class Layer:
    input_norm: torch.Tensor
    qkv: torch.Tensor  # q and k rows in pair order (see `pair_order`), then v
    qkv_bias: torch.Tensor | None
    qk_norm: torch.Tensor | None  # [heads + kv_heads, head_dim]: q_norm's weight per q head, k_norm's per k head
    out: torch.Tensor
    out_bias: torch.Tensor | None
    post_norm: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor


def supported(model: PreTrainedModel) -> bool:
    cfg = model.config
    rotary = getattr(getattr(model, "model", None), "rotary_emb", None)
    return (
        cfg.model_type in ARCHITECTURES
        and rotary is not None
        and getattr(rotary, "rope_type", "default") in ROPE_TYPES
        and not getattr(cfg, "use_sliding_window", False)
        and all(t == "full_attention" for t in (getattr(cfg, "layer_types", None) or []))
        and not getattr(cfg, "mlp_bias", False)
        and cfg.hidden_act == "silu"
    )


def pair_order(head_dim: int) -> torch.Tensor:
    """Dims of a head reordered so that each pair RoPE rotates together (d, d + half) sits side by side:
    the rotation is then one complex multiply. q and k share the order, so their dot products are unchanged."""
    half = head_dim // 2
    return torch.stack([torch.arange(half), torch.arange(half) + half], -1).flatten()


def fused_layer(block: torch.nn.Module, heads: int, kv_heads: int, head_dim: int, dtype: torch.dtype) -> Layer:
    """One block's weights in `dtype`, with LoRA adapters folded in; q/k/v and gate/up are fused copies."""
    attn, mlp = block.self_attn, block.mlp
    order = pair_order(head_dim).to(attn.q_proj.weight.device)

    def w(linear: torch.nn.Module) -> torch.Tensor:
        return effective_weight(linear).to(dtype)

    def paired(w: torch.Tensor, n: int) -> torch.Tensor:
        return w.view(n, head_dim, *w.shape[1:])[:, order].reshape(w.shape)

    weights = [paired(w(attn.q_proj), heads), paired(w(attn.k_proj), kv_heads), w(attn.v_proj)]
    biases = [attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]
    if biases[0] is not None:
        biases = [paired(biases[0].to(dtype), heads), paired(biases[1].to(dtype), kv_heads), biases[2].to(dtype)]
    q_norm, k_norm = getattr(attn, "q_norm", None), getattr(attn, "k_norm", None)
    qk_norm = None
    if q_norm is not None:
        qk_norm = torch.cat([q_norm.weight[order].expand(heads, -1), k_norm.weight[order].expand(kv_heads, -1)])
        qk_norm = qk_norm.to(dtype)
    return Layer(
        input_norm=block.input_layernorm.weight.to(dtype),
        qkv=torch.cat(weights),
        qkv_bias=torch.cat(biases) if biases[0] is not None else None,
        qk_norm=qk_norm,
        out=w(attn.o_proj),
        out_bias=attn.o_proj.bias.to(dtype) if attn.o_proj.bias is not None else None,
        post_norm=block.post_attention_layernorm.weight.to(dtype),
        gate_up=torch.cat([w(mlp.gate_proj), w(mlp.up_proj)]),
        down=w(mlp.down_proj),
    )


PACK_MIN = 2**18  # output-head sizes from which packing pays: SmolLM2's (28M) does; the tiny model's (131k) did not


def packs(device: str, dtype_bytes: int, head_size: int) -> bool:
    """Whether the decoder keeps oneDNN-packed weight copies: fp32 on a CPU with oneDNN, a model past the tiny
    (the tiny bench's rollout fell from 3.08x to 2.29x HF generate with them)."""
    return device == "cpu" and dtype_bytes == 4 and torch.backends.mkldnn.is_available() and head_size >= PACK_MIN


def copies_every_weight(device: str, dtype_bytes: int, lora: bool, head_size: int) -> bool:
    """Whether the decoder holds a copy of every weight (packed, cast or with adapters folded in), or only of the
    fused q/k/v and gate/up ones (plan/plan.py's estimate)."""
    return packs(device, dtype_bytes, head_size) or dtype_bytes != 4 or lora


def pack(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """`weight` [out, in] in oneDNN's layout for inputs of about `rows` rows (any row count works)."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    if weight.is_mkldnn:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)


def rotate(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """RoPE on pair-ordered heads: x [B, T, heads, D] times rotation [B, T, 1, D / 2] (complex)."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * rotation).flatten(-2).to(x.dtype)


def attention_mask(valid: torch.Tensor, length: int) -> torch.Tensor:
    """[B, 1, T, slots]: each of the last T slots sees the valid slots up to itself, and always itself
    (so padding rows stay finite)."""
    if length == 1:  # one new token: it sees every valid slot, itself included
        return valid[:, None, None, :]
    slots = valid.shape[1]
    key = torch.arange(slots, device=valid.device)[None]
    query = torch.arange(slots - length, slots, device=valid.device)[:, None]
    return (valid[:, None, None, :] & (key <= query)) | (key == query)


class StaticDecoder:
    """Logits for the next token of `batch` sequences, keeping their keys and values in a fixed cache. It computes
    in the weights' dtype, or in the autocast dtype when autocast is on (its weights are then copies in it)."""

    def __init__(self, model: PreTrainedModel, batch: int, max_len: int):
        cfg, inner = model.config, model.model
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.eps = cfg.rms_norm_eps
        device = inner.embed_tokens.weight.device
        dtype = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None
        dtype = dtype or inner.embed_tokens.weight.dtype
        self.embed = inner.embed_tokens.weight.to(dtype)
        self.norm = inner.norm.weight.to(dtype)
        self.head = effective_weight(model.lm_head).to(dtype)
        self.layers = [fused_layer(block, self.heads, self.kv_heads, self.head_dim, dtype) for block in inner.layers]
        if packs(self.head.device.type, self.head.dtype.itemsize, self.head.numel()):
            self.head = pack(self.head, batch)
            for layer in self.layers:
                for name in ("qkv", "out", "gate_up", "down"):
                    setattr(layer, name, pack(getattr(layer, name), batch))
        rotary = inner.rotary_emb
        angles = torch.outer(torch.arange(max_len, device=self.embed.device).float(), rotary.inv_freq.float())
        self.rotations = torch.polar(torch.full_like(angles, rotary.attention_scaling), angles)
        shape = (len(self.layers), batch, self.kv_heads, max_len, self.head_dim)
        self.keys = torch.zeros(shape, dtype=self.embed.dtype, device=self.embed.device)
        self.values = torch.zeros_like(self.keys)
        self.batch = batch  # the cached sequences are the first `batch` rows of keys and values

    @staticmethod
    def build(model: PreTrainedModel, batch: int, max_len: int) -> StaticDecoder | None:
        return StaticDecoder(model, batch, max_len) if supported(model) else None

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep the cached sequences `rows` (in that order; one may be kept twice) and drop the others; a cache
        that does not grow keeps its size for rows to come."""
        if len(rows) > self.keys.shape[1]:
            self.keys, self.values = self.keys[:, rows], self.values[:, rows]
        else:
            self.keys[:, : len(rows)], self.values[:, : len(rows)] = self.keys[:, rows], self.values[:, rows]
        self.batch = len(rows)

    def append_rows(self, n: int) -> None:
        """Add `n` cached sequences after the others (their slots hold whatever was there: mask them)."""
        missing = self.batch + n - self.keys.shape[1]
        if missing > 0:
            shape = (self.keys.shape[0], missing, *self.keys.shape[2:])
            self.keys = torch.cat([self.keys, self.keys.new_zeros(shape)], 1)
            self.values = torch.cat([self.values, self.values.new_zeros(shape)], 1)
        self.batch += n

    def shift_slots(self, shift: int, end: int) -> None:
        """Move the cached slots [shift, end) to [0, end - shift) (positions are each row's own, so a row's keys
        stay as they are wherever they sit)."""
        n = end - shift
        for cache in (self.keys, self.values):
            cache[:, : self.batch, :, :n] = cache[:, : self.batch, :, shift:end].clone()

    def copy_row(self, source: int, targets: list[int], start: int, end: int) -> None:
        """Copy the cached keys and values of row `source`'s slots [start, end) to the `targets` rows."""
        if targets:
            self.keys[:, targets, :, start:end] = self.keys[:, source : source + 1, :, start:end]
            self.values[:, targets, :, start:end] = self.values[:, source : source + 1, :, start:end]

    def forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        valid: torch.Tensor,
        rows: torch.Tensor | None = None,
        begin: int = 0,
    ) -> torch.Tensor:
        """ids, positions: [B, T], the last T of the `valid.shape[1]` cache slots; valid: [B, slots], False for
        padding; `rows`: the cache rows they are (default: all, in order); attention reads slots from `begin` on
        (those before it are padding for every row). Returns the last position's logits, [B, vocab]."""
        batch, length = ids.shape
        end = valid.shape[1]
        start = end - length
        mask = attention_mask(valid[:, begin:], length)
        rotation = self.rotations[positions][:, :, None]
        x = F.embedding(ids, self.embed)
        n_qk = (self.heads + self.kv_heads) * self.head_dim
        for i, layer in enumerate(self.layers):
            h = F.rms_norm(x, x.shape[-1:], layer.input_norm, self.eps)
            qkv = linear(h, layer.qkv, layer.qkv_bias)
            qk = qkv[..., :n_qk].unflatten(-1, (-1, self.head_dim))  # [B, T, heads + kv_heads, D]
            if layer.qk_norm is not None:
                qk = F.rms_norm(qk, qk.shape[-1:], None, self.eps) * layer.qk_norm
            qk = rotate(qk, rotation).transpose(1, 2)
            keys, values = (
                (self.keys[i, : self.batch], self.values[i, : self.batch])
                if rows is None
                else (self.keys[i, rows], self.values[i, rows])
            )
            keys[:, :, start:end] = qk[:, self.heads :]
            values[:, :, start:end] = qkv[..., n_qk:].unflatten(-1, (-1, self.head_dim)).transpose(1, 2)
            if rows is not None:  # a gathered copy: write it back
                self.keys[i, rows], self.values[i, rows] = keys, values
            attn = F.scaled_dot_product_attention(
                qk[:, : self.heads], keys[:, :, begin:end], values[:, :, begin:end], attn_mask=mask, enable_gqa=True
            )
            x = x + linear(attn.transpose(1, 2).reshape(batch, length, -1), layer.out, layer.out_bias)
            h = F.rms_norm(x, x.shape[-1:], layer.post_norm, self.eps)
            gate, up = linear(h, layer.gate_up).chunk(2, -1)
            x = x + linear(F.silu(gate) * up, layer.down)
        return linear(F.rms_norm(x[:, -1], x.shape[-1:], self.norm, self.eps), self.head)

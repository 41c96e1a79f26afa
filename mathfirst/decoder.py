"""A lean forward pass for Llama-family decoders (Llama, Qwen2, Qwen3) over a preallocated KV cache.

It reads the HF model's own weights (q/k/v and gate/up fused into one matmul each) and makes a handful
of tensor calls per layer, so sampling with small models is bound by arithmetic, not by Python.
Models it cannot reproduce exactly (other architectures, sliding windows, dynamic RoPE) get `None`
from `StaticDecoder.build` and are sampled through the HF forward instead."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

ARCHITECTURES = {"llama", "qwen2", "qwen3"}
ROPE_TYPES = {"default", "linear", "llama3", "yarn"}  # the ones whose frequencies do not depend on length


@dataclass
class Layer:
    input_norm: torch.Tensor
    qkv: torch.Tensor
    qkv_bias: torch.Tensor | None
    q_norm: torch.Tensor | None
    k_norm: torch.Tensor | None
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


def fused_layer(block: torch.nn.Module) -> Layer:
    attn, mlp = block.self_attn, block.mlp
    biases = [attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]
    q_norm, k_norm = getattr(attn, "q_norm", None), getattr(attn, "k_norm", None)
    return Layer(
        input_norm=block.input_layernorm.weight,
        qkv=torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]),
        qkv_bias=torch.cat(biases) if biases[0] is not None else None,
        q_norm=q_norm.weight if q_norm is not None else None,
        k_norm=k_norm.weight if k_norm is not None else None,
        out=attn.o_proj.weight,
        out_bias=attn.o_proj.bias,
        post_norm=block.post_attention_layernorm.weight,
        gate_up=torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]),
        down=mlp.down_proj.weight,
    )


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


def attention_mask(valid: torch.Tensor, length: int) -> torch.Tensor:
    """[B, 1, T, slots]: each of the last T slots sees the valid slots up to itself, and always itself
    (so padding rows stay finite)."""
    slots = valid.shape[1]
    key = torch.arange(slots, device=valid.device)[None]
    query = torch.arange(slots - length, slots, device=valid.device)[:, None]
    return (valid[:, None, None, :] & (key <= query)) | (key == query)


class StaticDecoder:
    """Logits for the next token of `batch` sequences, keeping their keys and values in a fixed cache."""

    def __init__(self, model: PreTrainedModel, batch: int, max_len: int):
        cfg, inner = model.config, model.model
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.eps = cfg.rms_norm_eps
        self.embed = inner.embed_tokens.weight
        self.norm = inner.norm.weight
        self.head = model.lm_head.weight
        self.layers = [fused_layer(block) for block in inner.layers]
        rotary = inner.rotary_emb
        freqs = torch.outer(torch.arange(max_len, device=self.embed.device).float(), rotary.inv_freq.float())
        angles = torch.cat([freqs, freqs], -1)
        self.cos = (angles.cos() * rotary.attention_scaling).to(self.embed.dtype)
        self.sin = (angles.sin() * rotary.attention_scaling).to(self.embed.dtype)
        shape = (len(self.layers), batch, self.kv_heads, max_len, self.head_dim)
        self.keys = torch.zeros(shape, dtype=self.embed.dtype, device=self.embed.device)
        self.values = torch.zeros_like(self.keys)

    @staticmethod
    def build(model: PreTrainedModel, batch: int, max_len: int) -> StaticDecoder | None:
        return StaticDecoder(model, batch, max_len) if supported(model) else None

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Drop every cached sequence but `rows` (in that order)."""
        self.keys, self.values = self.keys[:, rows], self.values[:, rows]

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """ids, positions: [B, T], the last T of the `valid.shape[1]` cache slots; valid: [B, slots], False for
        padding. Returns the last position's logits, [B, vocab]."""
        batch, length = ids.shape
        end = valid.shape[1]
        start = end - length
        mask = attention_mask(valid, length)
        cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]
        x = F.embedding(ids, self.embed)
        sizes = [self.heads * self.head_dim, self.kv_heads * self.head_dim, self.kv_heads * self.head_dim]
        for i, layer in enumerate(self.layers):
            h = F.rms_norm(x, x.shape[-1:], layer.input_norm, self.eps)
            q, k, v = F.linear(h, layer.qkv, layer.qkv_bias).split(sizes, -1)
            q = q.view(batch, length, self.heads, self.head_dim)
            k = k.view(batch, length, self.kv_heads, self.head_dim)
            if layer.q_norm is not None:
                q = F.rms_norm(q, q.shape[-1:], layer.q_norm, self.eps)
                k = F.rms_norm(k, k.shape[-1:], layer.k_norm, self.eps)
            q = rotate(q.transpose(1, 2), cos, sin)
            self.keys[i, :, :, start:end] = rotate(k.transpose(1, 2), cos, sin)
            self.values[i, :, :, start:end] = v.view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
            attn = F.scaled_dot_product_attention(
                q, self.keys[i, :, :, :end], self.values[i, :, :, :end], attn_mask=mask, enable_gqa=True
            )
            x = x + F.linear(attn.transpose(1, 2).reshape(batch, length, -1), layer.out, layer.out_bias)
            h = F.rms_norm(x, x.shape[-1:], layer.post_norm, self.eps)
            gate, up = F.linear(h, layer.gate_up).chunk(2, -1)
            x = x + F.linear(F.silu(gate) * up, layer.down)
        return F.linear(F.rms_norm(x[:, -1], x.shape[-1:], self.norm, self.eps), self.head)

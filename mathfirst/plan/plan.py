"""Peak-memory estimate of each stage, from the model's config.json and the stage's settings, made before any
weights load. A stage's peak is what it keeps (weights, gradients, optimizer state, the KL reference) plus the
larger of its two phases: sampling (the decoder's fused weight copies, the KV cache, a batch of logits) and the
update (one micro-batch's activations, one chunk of full-vocabulary logits, the kept softmax). Every
length is its upper bound: prompt + response = model.max_seq_len, each response max_new_tokens long."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch
from rich.console import Console
from rich.table import Table
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

from mathfirst.config import RL_STAGES, ConfigError, LoraConfig, RunConfig
from mathfirst.rl.logprobs import LOGITS_CHUNK, kept_logits_bytes
from mathfirst.sampling.decoder import copies_every_weight
from mathfirst.train.precision import compute_dtype

GB = 1024**3
RUNTIME = {"cpu": int(0.45 * GB), "cuda": 0}  # the process itself: Python, torch, transformers (CPU resident set)
HEADROOM = 0.9  # share of the budget an estimate may fill (allocator caching and fragmentation take the rest)
FUSED = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")  # the decoder's fused copies (sampling/decoder.py)
LOGIT_COPIES = 2  # a logits chunk in fp32 and its exp (the gradient is built in place of one of them)
SAMPLING_LOGIT_COPIES = 3  # next-token logits, their softmax, the cumulative sum drawn from


@dataclass(frozen=True)
class Shape:
    """What the estimate needs of a model: counts from its config, its weights never allocated."""

    params: int
    layers: int
    hidden: int
    intermediate: int
    kv_dim: int  # key/value heads x head dim
    vocab: int
    fused: int  # parameters of q, k, v, gate and up over all layers
    adapter: int  # LoRA parameters of a stage (0 without LoRA)
    adapter_inputs: int  # per layer: the input widths of its adapted linears (each adapter keeps its input)

    def activation_floats(self) -> int:
        """Values one token keeps for the backward in one decoder layer (norms, q/k/v, attention output, MLP,
        adapters' inputs), held against measured peaks on SmolLM2-135M (tests/plan/test_memory.py):
        about 12 x hidden + 4 x intermediate + 2 x kv_dim."""
        return 12 * self.hidden + 4 * self.intermediate + 2 * self.kv_dim + self.adapter_inputs


def model_config(cfg: RunConfig) -> PretrainedConfig:
    """The starting model's config: its config.json, or the tiny Qwen3 the run would build."""
    if cfg.model.init == "tiny":
        from mathfirst.model import tiny_config

        return tiny_config(cfg.model, cfg.model.vocab_size, eos_id=0, pad_id=0)
    path = Path(cfg.model.init)
    if not (path / "config.json").is_file():
        raise ConfigError(f"model.init: {path} is not a local Hugging Face model folder (no config.json)")
    return AutoConfig.from_pretrained(path, local_files_only=True)


def model_shape(config: PretrainedConfig, lora: LoraConfig | None = None) -> Shape:
    """Parameter counts of the model `config` describes, built on the meta device (no memory)."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    linears = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    head = model.get_output_embeddings()
    adapted = []
    if lora is not None:
        targets = lora.target_modules
        hit = (
            (lambda n, m: m is not head) if targets == "all-linear" else (lambda n, m: n.rsplit(".", 1)[-1] in targets)
        )
        adapted = [m for n, m in linears.items() if hit(n, m)]
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return Shape(
        params=sum(p.numel() for p in model.parameters()),
        layers=config.num_hidden_layers,
        hidden=config.hidden_size,
        intermediate=config.intermediate_size,
        kv_dim=getattr(config, "num_key_value_heads", heads) * head_dim,
        vocab=config.vocab_size,
        fused=sum(m.weight.numel() for n, m in linears.items() if n.rsplit(".", 1)[-1] in FUSED),
        adapter=sum(lora.rank * (m.in_features + m.out_features) for m in adapted),
        adapter_inputs=sum(m.in_features for m in adapted) // config.num_hidden_layers,
    )


@dataclass
class Estimate:
    """Bytes of one stage at its peak: `kept` throughout, plus the larger of its phases."""

    stage: str
    device: str
    kept: dict[str, int]
    phases: dict[str, dict[str, int]]
    rollout_rows: int | None = None  # rows the sampler may run at once (RL and eval)
    notes: list[str] = field(default_factory=list)

    @property
    def peak(self) -> int:
        return RUNTIME[self.device] + sum(self.kept.values()) + max(sum(p.values()) for p in self.phases.values())

    def largest(self) -> str:
        """The part that weighs most."""
        parts = dict(self.kept) | {k: v for phase in self.phases.values() for k, v in phase.items()}
        return max(parts, key=parts.get)


def kept_bytes(shape: Shape, lora: bool, dtype_bytes: int, reference: bool) -> dict[str, int]:
    """Trainable weights are fp32 with fp32 gradients and AdamW's two moments; frozen ones are in the compute
    dtype (train/precision.py)."""
    trainable = shape.adapter if lora else shape.params
    weights = shape.params * dtype_bytes + shape.adapter * 4 if lora else shape.params * 4
    out = {"weights": weights, "gradients": trainable * 4, "optimizer": trainable * 8}
    if reference:
        out["reference"] = shape.params * dtype_bytes
    return out


def sampling_bytes(shape: Shape, rows: int, length: int, dtype_bytes: int, copies_all: bool) -> dict[str, int]:
    """The native sampler's batch: fused weight copies (all weights when they are cast or carry adapters), the
    KV cache of `rows` sequences of `length` tokens, one step's logits."""
    copies = shape.params if copies_all else shape.fused
    return {
        "decoder_weights": copies * dtype_bytes,
        "kv_cache": rows * length * shape.layers * shape.kv_dim * 2 * dtype_bytes,
        "sampling_logits": rows * shape.vocab * 4 * SAMPLING_LOGIT_COPIES,
    }


def prefill_bytes(shape: Shape, prompts: int, width: int, dtype_bytes: int) -> int:
    """The sampler's prefill of `prompts` distinct prompts of up to `width` tokens: one layer's activations
    (its input, q/k/v, attention output, MLP) and the boolean attention mask (attention itself is fused)."""
    per_token = 4 * shape.hidden + 2 * shape.kv_dim + 3 * shape.intermediate
    return prompts * width * (per_token * dtype_bytes + width)


def update_bytes(shape: Shape, tokens: int, scored: int, dtype_bytes: int, checkpointing: bool) -> dict[str, int]:
    """One forward + backward over `tokens` tokens (`scored` of them in the loss): activations (with
    checkpointing: each layer's input, and one layer recomputed), one chunk of logits and the softmax kept for
    the backward. Attention is fused (rl/packing.py's computes only the blocks a token may see)."""
    per_layer = shape.activation_floats() * dtype_bytes
    if checkpointing:
        activations = tokens * (shape.layers * shape.hidden * dtype_bytes + per_layer)
    else:
        activations = tokens * shape.layers * per_layer
    return {
        "activations": activations,
        "logits": min(scored, LOGITS_CHUNK) * shape.vocab * 4 * LOGIT_COPIES + kept_logits_bytes(scored, shape.vocab),
    }


def sampler_rows(shape: Shape, wanted: int, length: int, dtype_bytes: int, copies_all: bool, room: int) -> int:
    """The most rows up to `wanted` whose sampling phase fits in `room` bytes (at least 1)."""
    fixed = sampling_bytes(shape, 0, length, dtype_bytes, copies_all)["decoder_weights"]
    one = sampling_bytes(shape, 1, length, dtype_bytes, copies_all)
    per_row = one["kv_cache"] + one["sampling_logits"]
    return max(1, min(wanted, (room - fixed) // per_row))


def estimate_stage(cfg: RunConfig, stage: str, device: str, budget: int, shape: Shape | None = None) -> Estimate:
    """The peak of `stage` (or `eval`, the evaluation after each stage) on `device` within `budget` bytes, the
    sampler's rows lowered where their KV cache would not fit."""
    dtype = compute_dtype(cfg.model.dtype, torch.device(device))
    b = dtype.itemsize
    seq = cfg.model.max_seq_len
    if stage == "eval":
        shape = shape or model_shape(model_config(cfg))
        kept = {"weights": shape.params * b}
        room = int(budget * HEADROOM) - RUNTIME[device] - kept["weights"]
        copies_all = copies_every_weight(device, b, False, shape.vocab * shape.hidden)
        rows = sampler_rows(shape, cfg.eval.batch_size, seq, b, copies_all, room)
        return Estimate("eval", device, kept, {"sampling": sampling_bytes(shape, rows, seq, b, copies_all)}, rows)
    scfg = getattr(cfg, stage)
    shape = shape or model_shape(model_config(cfg), scfg.lora)
    lora = scfg.lora is not None
    copies_all = copies_every_weight(device, b, lora, shape.vocab * shape.hidden)
    kept = kept_bytes(shape, lora, b, reference=stage in RL_STAGES and scfg.kl_coef > 0)
    room = int(budget * HEADROOM) - RUNTIME[device] - sum(kept.values())
    if stage in RL_STAGES:
        prompt = seq - scfg.max_new_tokens
        rows = min(scfg.micro_batch_rows, scfg.mini_batch_groups * scfg.group_size)  # responses per micro-batch
        per_chunk = min(rows, scfg.group_size)
        chunks = math.ceil(rows / per_chunk)
        tokens = chunks * (prompt + per_chunk * scfg.max_new_tokens)
        update = update_bytes(shape, tokens, rows * scfg.max_new_tokens, b, scfg.gradient_checkpointing)
        sampler = sampler_rows(shape, scfg.rollout_batch_size, seq, b, copies_all, room)
        phases = {"update": update, "sampling": sampling_bytes(shape, sampler, seq, b, copies_all)}
        return Estimate(stage, device, kept, phases, sampler)
    rows = scfg.micro_batch_size or scfg.batch_size
    update = update_bytes(shape, rows * seq, rows * seq, b, scfg.gradient_checkpointing)
    phases = {"update": update}
    if scfg.self_distill is not None:
        copies_all = copies_every_weight(device, b, False, shape.vocab * shape.hidden)
        rows = sampler_rows(shape, cfg.eval.batch_size, seq, b, copies_all, room)
        phases["sampling"] = sampling_bytes(shape, rows, seq, b, copies_all)
    return Estimate(stage, device, kept, phases)


def memory_budget(cfg: RunConfig, device: str) -> int:
    """Bytes a stage may use: `memory_gb`, else the GPU's memory, else the RAM available (and the cgroup's limit)."""
    if cfg.memory_gb is not None:
        return int(cfg.memory_gb * GB)
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("there is no GPU here to take the budget from: give one with --memory-gb (or memory_gb)")
        return torch.cuda.get_device_properties(0).total_memory
    return available_ram()


def available_ram() -> int:
    """RAM this process may still take: what the machine has free, within the cgroup's limit."""
    available = psutil.virtual_memory().available
    limit = Path("/sys/fs/cgroup/memory.max")
    if limit.is_file() and limit.read_text().strip().isdigit():
        used = Path("/sys/fs/cgroup/memory.current")
        current = int(used.read_text()) if used.is_file() else 0
        available = min(available, int(limit.read_text()) - current)
    return available


def plan(cfg: RunConfig, device: str | None = None) -> tuple[list[Estimate], int]:
    """The estimate of every configured stage and of the evaluation, and the budget they were made against."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    budget = memory_budget(cfg, device)
    stages = [s for s in cfg.stages if not (s == "pretrain" and cfg.model.init != "tiny")]
    config, shapes = model_config(cfg), {}  # one shape per distinct LoRA setting

    def shape(stage: str) -> Shape:
        lora = None if stage == "eval" else getattr(cfg, stage).lora
        key = lora.model_dump_json() if lora else ""
        if key not in shapes:
            shapes[key] = model_shape(config, lora)
        return shapes[key]

    return [estimate_stage(cfg, s, device, budget, shape(s)) for s in [*stages, "eval"]], budget


ADVICE = {
    "weights": "{stage}.lora (adapters train, the base stays frozen in bf16 on a GPU)",
    "gradients": "{stage}.lora",
    "optimizer": "{stage}.lora",
    "reference": "{stage}.kl_coef: 0 (no reference model)",
    "activations": "{stage}.gradient_checkpointing: true, a smaller {stage}.{rows} or model.max_seq_len",
    "logits": "a smaller {stage}.{rows} or model.max_seq_len",
    "decoder_weights": "{stage}.lora off, or model.dtype: float32 (no cast copies)",
    "kv_cache": "a smaller {stage}.rollout_batch_size or model.max_seq_len",
    "sampling_logits": "a smaller {stage}.rollout_batch_size",
}


def refusal(estimate: Estimate, budget: int) -> str | None:
    """The one-line error of a stage whose estimate does not fit in the budget, else None."""
    if estimate.peak <= budget * HEADROOM:
        return None
    largest = estimate.largest()
    rows = "micro_batch_rows" if estimate.stage in RL_STAGES else "batch_size"
    where = "eval" if estimate.stage == "eval" else estimate.stage
    advice = ADVICE[largest].format(stage=where, rows=rows)
    if estimate.stage == "eval":
        advice = "a smaller eval.batch_size or model.max_seq_len" if largest != "weights" else "a larger device"
    return (
        f"{estimate.stage}: needs about {estimate.peak / GB:.1f} GB at its peak ({largest} "
        f"{_largest_bytes(estimate, largest) / GB:.1f} GB), over the {budget * HEADROOM / GB:.1f} GB it may use "
        f"({HEADROOM:.0%} of {budget / GB:.1f} GB on {estimate.device}); change {advice}, or set memory_gb"
    )


def _largest_bytes(estimate: Estimate, part: str) -> int:
    return estimate.kept.get(part) or max(p.get(part, 0) for p in estimate.phases.values())


def measured_peak(config: Path, stage: str) -> int:
    """Peak bytes of two worst-case steps of `stage`, run by memory_probe in a fresh process."""
    cmd = [sys.executable, "-m", "mathfirst.plan.probe", str(config), stage]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{stage}: the probe failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["measured"]


def print_plan(cfg: RunConfig, device: str | None, measure_config: Path | None = None) -> bool:
    """Print the plan as a table (with measured peaks when `measure_config` is given); True when all fit."""
    estimates, budget = plan(cfg, device)
    table = Table(title=f"peak memory by stage, GB (budget {budget / GB:.1f} GB, {HEADROOM:.0%} usable)")
    for column in ("stage", "weights", "grads + optim", "sampling", "update", "sampler rows", "peak", "fits"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    if measure_config is not None:
        table.add_column("measured", justify="right")
    problems = []
    for e in estimates:
        phase = {name: f"{sum(parts.values()) / GB:.2f}" for name, parts in e.phases.items()}
        problem = refusal(e, budget)
        problems += [problem] if problem else []
        row = [
            e.stage,
            f"{(e.kept['weights'] + e.kept.get('reference', 0)) / GB:.2f}",
            f"{(e.kept.get('gradients', 0) + e.kept.get('optimizer', 0)) / GB:.2f}",
            phase.get("sampling", "-"),
            phase.get("update", "-"),
            str(e.rollout_rows or "-"),
            f"{e.peak / GB:.2f}",
            "no" if problem else "yes",
        ]
        if measure_config is not None:
            row.append(f"{measured_peak(measure_config, e.stage) / GB:.2f}" if e.stage != "eval" else "-")
        table.add_row(*row)
    Console().print(table)
    for problem in problems:
        Console(stderr=True).print(problem, highlight=False, markup=False)
    return not problems

"""One short check of the native trainer on a GPU (docs/gpu.md). For each model shape: random weights built from
its config.json, its preset's settings (bf16 autocast, LoRA, activation checkpointing, micro-batches, lengths), and
three parts, each in its own process under its own time budget: two SFT steps, one DAPO step (the native sampler,
the real math verifier, the packed update), and the sampler against HF `generate`. Each part's peak memory is held
against the memory plan's estimate for the same settings.
    python -m mathfirst.bench.gpu_check OUT [--shape NAME]... [--budget SECONDS]  ->  OUT/gpu_check.{json,log}
The `tiny` shape runs the same code on a CPU in seconds (tests/bench/test_gpu_check.py)."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.bench.bench import hf_generate, timed_count
from mathfirst.bench.step import update_flops
from mathfirst.config import PRESETS, RunConfig, load_config
from mathfirst.data.loaders import RLPrompt
from mathfirst.data.traces import TraceStyle
from mathfirst.data.world import generate_tasks, traces
from mathfirst.eval.suites import load_benchmark
from mathfirst.model import best_device, set_checkpointing, trainable
from mathfirst.plan.plan import GB, RUNTIME, Estimate, estimate_stage, memory_budget, model_config
from mathfirst.plan.probe import peak, reset_peak
from mathfirst.prompts import user_message
from mathfirst.rewards import route
from mathfirst.rl.loop import Group, pack, rollout_groups, update
from mathfirst.sampling.rollout import Rollout, sample_batch
from mathfirst.tokenizer import chat_prompt_ids, train_tokenizer
from mathfirst.train.lora import adapt
from mathfirst.train.optim import make_optimizer
from mathfirst.train.precision import autocast, compute_dtype
from mathfirst.train.sft import accumulate

SHAPES_DIR = Path(__file__).parents[2] / "tests" / "fixtures" / "shapes"  # config.json files (memory tests too)
PARTS = ("sft", "dapo", "sampler_vs_generate")
SFT_STEPS = 2  # the second is timed: the first also creates the optimizer's state and warms the kernels up
BUDGET_S = 450  # all parts of both shapes: with the set-up, the whole call stays under 8 minutes
MIN_PART_S = 10  # a part left less time than this is skipped: starting Python and torch alone takes seconds
BF16_PEAK_TFLOPS = {"H100 80GB HBM3": 989, "H100 SXM": 989, "H200": 989, "A100": 312}  # dense, by device name


@dataclass(frozen=True)
class Shape:
    """A model shape to check: whose settings, which config.json, the lengths, and each part's time budget."""

    preset: str  # configs/<preset>.yaml: LoRA, checkpointing, micro-batches, group size, learning rates
    init: str  # model.init: a folder holding the shape's config.json (no weights), or "tiny"
    sft_len: int  # tokens per SFT row: the preset's model.max_seq_len
    new_tokens: int  # the DAPO responses' length: the presets' 8,192 take minutes per step, so a quarter
    race_tokens: int  # tokens per row when the sampler races HF generate
    budgets: dict[str, int]  # seconds per part


SHAPES = {
    "qwen3-4b": Shape(
        "qwen3-4b", str(SHAPES_DIR / "qwen3-4b"), 9216, 2048, 256,
        {"sft": 60, "dapo": 120, "sampler_vs_generate": 50},
    ),
    "llama3.1-8b": Shape(
        "llama3.1-8b", str(SHAPES_DIR / "llama3.1-8b"), 9216, 2048, 256,
        {"sft": 60, "dapo": 110, "sampler_vs_generate": 50},
    ),
    "tiny": Shape("qwen3-4b", "tiny", 64, 16, 16, {"sft": 60, "dapo": 60, "sampler_vs_generate": 60}),
}  # fmt: skip
DEFAULT_SHAPES = ("qwen3-4b", "llama3.1-8b")


def check_config(shape: Shape, new_tokens: int) -> RunConfig:
    """The shape's preset, shortened: two SFT steps of two micro-batches, one DAPO step of one group of GSM8K's
    first question (no reasoning-gym here), every group kept (a random model's are all wrong)."""
    path = PRESETS / f"{shape.preset}.yaml"
    preset = load_config(path)
    changes = {
        "stages": ["sft", "rl_math"],
        "model": {"init": shape.init, "max_seq_len": shape.sft_len},
        "sft": {"steps": SFT_STEPS, "batch_size": 2 * (preset.sft.micro_batch_size or 1)},
        "rl_math": {"steps": 1, "prompts_per_step": 1, "mini_batch_groups": 1, "max_new_tokens": new_tokens,
                    "rollout_batch_size": preset.rl_math.group_size, "reasoning_gym": None, "dynamic_sampling": False},
    }  # fmt: skip
    return load_config(path, changes)


def random_model(cfg: RunConfig, device: torch.device) -> PreTrainedModel:
    """A model of the config's shape with random fp32 weights (the trainer's precision), built on `device`."""
    torch.manual_seed(cfg.seed)
    with device:
        return AutoModelForCausalLM.from_config(model_config(cfg), dtype=torch.float32, attn_implementation="sdpa")


def trainee(cfg: RunConfig, stage: str, device: torch.device) -> tuple[PreTrainedModel, torch.dtype]:
    """A random model made ready as the stage makes it: adapters, activation checkpointing, compute dtype."""
    dtype = compute_dtype(cfg.model.dtype, device)
    scfg = getattr(cfg, stage)
    model = adapt(random_model(cfg, device), scfg.lora, dtype)
    set_checkpointing(model, scfg.gradient_checkpointing)
    return model, dtype


def check_tokenizer() -> PreTrainedTokenizerBase:
    """A small byte-level BPE trained here on tiny-world math traces (nothing to download); the ids a random
    model samples past its vocabulary decode to nothing."""
    pairs = traces(generate_tasks("math", "train", 200, 0), TraceStyle(1.0, 0.3, 1.0), 0)
    return train_tokenizer([f"{q}\n{s}" for q, s, _ in pairs], 512)


def math_prompts(cfg: RunConfig, n: int) -> list[RLPrompt]:
    """GSM8K's first `n` questions as RL prompts, scored by math-verify as a math run's would be."""
    return [
        RLPrompt(b.data_source, "math", user_message(b.question, "math", cfg.model.prompt_style), b.ground_truth,
                 b.extra_info)
        for b in load_benchmark("gsm8k", limit=n)
    ]  # fmt: skip


def seconds_since(t0: float, device: torch.device) -> float:
    """Seconds since `t0`, once the device has finished the work queued on it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"


def bf16_peak_tflops(name: str) -> int | None:
    """The card's dense bf16 peak, from the table of known cards; None for any other device."""
    return next((tflops for key, tflops in BF16_PEAK_TFLOPS.items() if key in name), None)


def mfu(flops: int, seconds: float, device: torch.device) -> float | None:
    """Useful FLOPs per second (bench_step.update_flops) over the card's bf16 peak."""
    peak_tflops = bf16_peak_tflops(device_name(device))
    return round(flops / seconds / (peak_tflops * 1e12), 3) if peak_tflops else None


def memory(estimate: Estimate, measured: dict[str, int]) -> dict:
    """The plan's estimate beside the measured peak, per phase and overall, in GB."""
    kept = RUNTIME[estimate.device] + sum(estimate.kept.values())
    phases = {
        phase: {"estimated_gb": gb(kept + sum(parts.values())), "measured_gb": gb(measured[phase])}
        for phase, parts in estimate.phases.items()
    }
    return {"estimated_peak_gb": gb(estimate.peak), "measured_peak_gb": gb(max(measured.values())), "phases": phases}


def gb(n: int) -> float:
    return round(n / GB, 2)


def sft_part(cfg: RunConfig, device: torch.device) -> dict:
    """SFT steps on rows of random tokens as long as model.max_seq_len (the plan's worst case)."""
    scfg = cfg.sft
    model, dtype = trainee(cfg, "sft", device)
    optimizer = make_optimizer(model, scfg)
    estimate = estimate_stage(cfg, "sft", device.type, memory_budget(cfg, device.type))
    length, vocab = cfg.model.max_seq_len, model.config.vocab_size
    rows = [torch.randint(vocab, (length,)).tolist() for _ in range(scfg.batch_size)]
    model.train()
    reset_peak(device)
    for _ in range(scfg.steps):  # the last one is timed
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        accumulate(model, [(r, r) for r in rows], scfg, 0, dtype)
        optimizer.step()
        step_s = seconds_since(t0, device)
    as_responses = [Group(None, [Rollout([], r, [], False) for r in rows], [], [], [])]  # every token scored
    return {
        "rows": scfg.batch_size, "seq_len": length, "micro_batch_size": scfg.micro_batch_size,
        "step_s": round(step_s, 2), "update_tokens_per_s": round(len(rows) * length / step_s),
        "mfu": mfu(update_flops(model, as_responses), step_s, device),
    } | memory(estimate, {"update": peak(device)})  # fmt: skip


def dapo_part(cfg: RunConfig, device: torch.device) -> dict:
    """One DAPO step of one group: the native sampler under autocast, the real verifier, the packed update."""
    scfg = cfg.rl_math
    model, dtype = trainee(cfg, "rl_math", device)
    optimizer = torch.optim.AdamW(trainable(model), lr=scfg.lr, weight_decay=scfg.weight_decay, betas=scfg.adam_betas)
    tok, tasks = check_tokenizer(), math_prompts(cfg, scfg.prompts_per_step)
    longest = max(len(chat_prompt_ids(tok, t.question)) for t in tasks) + scfg.max_new_tokens
    planned = cfg.model_copy(update={"model": cfg.model.model_copy(update={"max_seq_len": longest})})
    estimate = estimate_stage(planned, "rl_math", device.type, memory_budget(cfg, device.type))
    reset_peak(device)
    t0 = time.perf_counter()
    with autocast(device, dtype):
        groups = rollout_groups(model, tok, tasks, scfg, cfg.seed)
    sample_s, sampling_peak = seconds_since(t0, device), peak(device)
    reset_peak(device)
    t0 = time.perf_counter()
    model.train()
    batch = pack(groups, tok.pad_token_id, scfg.mask_truncated, scfg.norm_adv_by_std)
    stats = update(model, None, optimizer, batch, scfg.group_size, scfg, torch.Generator().manual_seed(0), dtype)
    update_s = seconds_since(t0, device)
    rollouts = [r for g in groups for r in g.rollouts]
    tokens = sum(len(r.response_ids) for r in rollouts)
    return {
        "responses": len(rollouts), "max_new_tokens": scfg.max_new_tokens, "micro_batch_rows": scfg.micro_batch_rows,
        "sampled_tokens": tokens, "truncated": sum(r.truncated for r in rollouts) / len(rollouts),
        "accuracy": sum(s for g in groups for s in g.scores) / len(rollouts), "sample_and_verify_s": round(sample_s, 2),
        "sample_tokens_per_s": round(tokens / sample_s), "update_s": round(update_s, 2),
        "update_tokens_per_s": round(tokens / update_s), "mfu": mfu(update_flops(model, groups), update_s, device),
        "verifier": route(tasks[0].data_source, tasks[0].extra_info), "loss": stats["loss"],
        "sampler_rows_planned": estimate.rollout_rows,
    } | memory(estimate, {"sampling": sampling_peak, "update": peak(device)})  # fmt: skip


def race_part(cfg: RunConfig, device: torch.device, tokens: int) -> dict:
    """The native sampler against HF `generate` on the DAPO step's prompts, every row `tokens` long (no EOS: a
    random model never stops), the weights in the compute dtype as the evaluation loads them."""
    model = random_model(cfg, device).to(compute_dtype(cfg.model.dtype, device)).eval()
    tok = check_tokenizer()
    rows = [chat_prompt_ids(tok, t.question) for t in math_prompts(cfg, 1) for _ in range(cfg.rl_math.group_size)]

    def ours(n: int) -> int:
        return sum(len(r.response_ids) for r in sample_batch(model, rows, tok.pad_token_id, -1, n))

    ours(8), hf_generate(model, tok, rows, 8, -1)  # warm-up
    ours_s, ours_n = timed_count(lambda: ours(tokens))
    hf_s, hf_n = timed_count(lambda: hf_generate(model, tok, rows, tokens, -1))
    return {
        "rows": len(rows), "new_tokens": tokens, "sampler_tokens_per_s": round(ours_n / ours_s),
        "hf_generate_tokens_per_s": round(hf_n / hf_s), "speedup": round(ours_n / ours_s / (hf_n / hf_s), 2),
    }  # fmt: skip


def run_part(shape: str, part: str, new_tokens: int) -> dict:
    """One part in this process: its figures, with the device and the settings that matter."""
    cfg = check_config(SHAPES[shape], new_tokens)
    device = best_device()
    settings = {"device": device_name(device), "dtype": str(compute_dtype(cfg.model.dtype, device)).split(".")[-1]}
    if part == "sampler_vs_generate":
        return settings | race_part(cfg, device, SHAPES[shape].race_tokens)
    scfg = cfg.sft if part == "sft" else cfg.rl_math
    settings |= {"lora_rank": scfg.lora and scfg.lora.rank, "checkpointing": scfg.gradient_checkpointing}
    return settings | (sft_part(cfg, device) if part == "sft" else dapo_part(cfg, device))


def part_in_process(shape: str, part: str, new_tokens: int, timeout: float, log: TextIO) -> dict:
    """`run_part` in a fresh process (its own peak memory) and its own session, killed with everything it started
    (the verifiers' workers too) once `timeout` seconds have passed."""
    cmd = [sys.executable, "-m", "mathfirst.bench.gpu_check", "--part", part, "--shape", shape]
    cmd += ["--new-tokens", str(new_tokens)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        result = outcome(proc.returncode, out)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        result = {"status": "timeout", "budget_s": round(timeout)}
    log.write(f"=== {shape} {part}: {result['status']}\n{err}\n")
    log.flush()
    return result | {"seconds": round(time.perf_counter() - t0, 1)}


def outcome(returncode: int, out: str) -> dict:
    """A finished part's figures (its last line of output), or how it ended without any."""
    lines = out.strip().splitlines()
    if lines:
        return json.loads(lines[-1])
    how = f"killed by signal {-returncode} (out of memory?)" if returncode < 0 else f"exit {returncode}"
    return {"status": "failed", "error": how}


def part_figures(shape: str, part: str, new_tokens: int) -> dict:
    """`run_part`'s figures, or the error that stopped it (its traceback goes to the log)."""
    try:
        return {"status": "ok"} | run_part(shape, part, new_tokens)
    except Exception as e:  # noqa: BLE001 - the parent records it and goes on to the next part
        traceback.print_exc()
        return {"status": "failed", "error": f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"}


def versions() -> dict:
    names = ("torch", "transformers", "peft", "pydantic", "math-verify")
    return {"python": platform.python_version()} | {n: importlib.metadata.version(n) for n in names}


def check(out: Path, shapes: list[str], budget: float, new_tokens: int | None, budgets: dict[str, int]) -> dict:
    """Every part of every shape, each in its own process within its budget and what is left of `budget`; the
    JSON is rewritten after each part, so whatever finished survives a call cut short."""
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + budget
    result: dict = {"device": None, "bf16_peak_tflops": None, "versions": versions(), "budget_s": budget, "shapes": {}}
    with open(out / "gpu_check.log", "w") as log:
        for name in shapes:
            shape = SHAPES[name]
            for part in PARTS:
                timeout = min(budgets.get(part, shape.budgets[part]), deadline - time.monotonic())
                figures = (
                    part_in_process(name, part, new_tokens or shape.new_tokens, timeout, log)
                    if timeout >= MIN_PART_S
                    else {"status": "skipped", "reason": "no time left"}
                )
                result["shapes"].setdefault(name, {})[part] = figures
                result["device"] = result["device"] or figures.get("device")
                result["bf16_peak_tflops"] = result["device"] and bf16_peak_tflops(result["device"])
                (out / "gpu_check.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mathfirst.bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, help="folder for gpu_check.json and gpu_check.log")
    parser.add_argument("--shape", action="append", choices=list(SHAPES), help="repeatable; default: the 4B and 8B")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for all parts together")
    parser.add_argument("--new-tokens", type=int, help="the DAPO responses' length (default: the shape's)")
    parser.add_argument("--part-budget", action="append", default=[], metavar="PART=SECONDS", help="e.g. dapo=300")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)  # a child: one part, one JSON line
    args = parser.parse_args(argv)
    shapes = args.shape or list(DEFAULT_SHAPES)
    if args.part:
        print(json.dumps(part_figures(shapes[0], args.part, args.new_tokens or SHAPES[shapes[0]].new_tokens)))
        return
    if args.out is None:
        parser.error("give the folder to write gpu_check.json to")
    budgets = {p: int(s) for p, s in (b.split("=") for b in args.part_budget)}
    print(json.dumps(check(args.out, shapes, args.budget, args.new_tokens, budgets), indent=1))


if __name__ == "__main__":
    main()

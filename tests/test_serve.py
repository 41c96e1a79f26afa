"""`mathfirst serve` through the official openai client, and the judge against the running server."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import openai
import pytest
import torch

from mathfirst.analysis import SKILLS, analyze_run
from mathfirst.config import ModelConfig
from mathfirst.model import build_tiny_model, load_model, save_model
from mathfirst.rewards import compute_score
from mathfirst.rewards.judge import Judge, JudgeUnavailable, parse_verdict
from mathfirst.rollout import sample
from mathfirst.tokenizer import chat_prompt_ids, train_tokenizer

ROOT = Path(__file__).parent.parent
CORPUS = ["Compute 12 + 34.\nSubgoal: add.\nAnswer: \\boxed{46}\nYES NO"] * 20 + ["Who is the tallest? Ann"] * 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(path: Path) -> tuple[subprocess.Popen, str]:
    """`mathfirst serve PATH` on a free port, once it answers /v1/models."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mathfirst.cli", "serve", str(path), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/models", timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()[-2000:]) from None
            time.sleep(0.3)
    return proc, url


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny-judge"
    tok = train_tokenizer(CORPUS, 400)
    cfg = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)
    save_model(build_tiny_model(cfg, tok, 0), tok, path)
    proc, url = start_server(path)
    yield url, path
    proc.terminate()
    proc.wait(timeout=20)


def test_models_completions_chat_and_streaming(server):
    url, path = server
    client = openai.OpenAI(base_url=url, api_key="unused")
    assert [m.id for m in client.models.list().data] == ["tiny-judge"]
    done = client.completions.create(model="tiny-judge", prompt="Compute 12", max_tokens=5, temperature=0, n=2)
    assert len(done.choices) == 2 and done.choices[0].text == done.choices[1].text  # greedy twice
    chat = client.chat.completions.create(
        model="tiny-judge", messages=[{"role": "user", "content": "Compute 12 + 34."}], max_tokens=12, temperature=0
    )
    text = chat.choices[0].message.content
    assert chat.choices[0].finish_reason in ("stop", "length") and chat.usage.completion_tokens > 0
    # the same greedy answer as the local sampler on the same checkpoint
    model, tok = load_model(path)
    local = sample(model, tok, [chat_prompt_ids(tok, "Compute 12 + 34.")], 12, temperature=0.0)[0]
    assert text == tok.decode(local.response_ids, skip_special_tokens=True)
    streamed = client.chat.completions.create(
        model="tiny-judge", messages=[{"role": "user", "content": "Compute 12 + 34."}], max_tokens=12,
        temperature=0, stream=True,
    )  # fmt: skip
    pieces = [c.choices[0].delta.content or "" for c in streamed]
    assert "".join(pieces) == text and len([p for p in pieces if p]) > 1
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="other", prompt="x", max_tokens=1)


def test_parse_verdict():
    assert parse_verdict("YES") is True and parse_verdict(" no, they differ") is False
    assert parse_verdict("Yes.") is True and parse_verdict("maybe") is None


def test_judge_round_trip_caches_and_batches(server):
    url, path = server
    judge = Judge(base_url=url, model="tiny-judge")
    items = [("What is 1/2?", "1/2", "0.5"), ("Who?", "Ann", "Bob")]
    first = judge.equivalent_many(items)
    assert len(first) == 2 and all(v in (True, False, None) for v in first) and judge.requests == 2
    assert judge.equivalent_many(items) == first and judge.requests == 2  # served from the cache
    assert "Reference answer:\n1/2" in judge.prompt(*items[0])
    judge.cache.clear()
    replies = [judge.ask(judge.prompt(*it)) for it in items]
    assert Judge(local_model=path).ask_many([judge.prompt(*it) for it in items]) == replies  # same judge, two backends


def test_judge_endpoint_down_is_a_clear_error(monkeypatch):
    judge = Judge(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", retries=1, timeout_s=2)
    with pytest.raises(JudgeUnavailable, match="failed after 2 tries"):
        judge.equivalent_many([("q", "a", "b")])
    monkeypatch.delenv("MATHFIRST_JUDGE_URL", raising=False)
    from mathfirst.rewards import env_judge

    env_judge.cache_clear()
    with pytest.raises(JudgeUnavailable, match="set MATHFIRST_JUDGE_URL"):
        compute_score("webinstruct", "\\boxed{a red ball}", "red ball", {"verifier": "judge"})


def test_skill_judge_detector_through_the_server(server, tmp_path):
    url, _ = server
    (tmp_path / "sft").mkdir()
    rows = [{"domain": "math", "kind": "greedy", "response": t} for t in ("First, find x. Check: ok", "42")]
    (tmp_path / "sft" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    judge = Judge(base_url=url, model="tiny-judge")
    result = analyze_run(tmp_path, "judge", judge)
    rates = result["stages"]["sft"]["math"]
    assert rates["n"] == 2 and set(rates) == {*SKILLS, "n"} and judge.requests == 2
    assert json.loads((tmp_path / "skills.json").read_text())["detector"] == "judge"


def test_eval_through_serve_equals_the_local_backend(tmp_path):
    """Greedy eval over HTTP (`mathfirst serve` + the http backend) gives the local backend's answers."""
    from mathfirst.eval.backends import LocalBackend, make_backend
    from mathfirst.eval.benchmarks import evaluate_benchmarks

    path = tmp_path / "peaky"
    tok = train_tokenizer(CORPUS, 400)
    model = build_tiny_model(ModelConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2), tok, 1)
    with torch.no_grad():  # large weights: greedy answers that depend on the prompt, not one repeated token
        for p in model.parameters():
            p.mul_(8.0 if p.dim() > 1 else 1.0)
    save_model(model, tok, path)
    proc, url = start_server(path)
    try:
        names, runs = ["math500", "gsm8k", "mmlu_stem"], {}
        for kind, backend in [("http", make_backend(url)), ("local", LocalBackend(str(path)))]:
            evaluate_benchmarks(backend, names, tmp_path / f"{kind}.json", max_tokens=24, limit=4)
            lines = (tmp_path / f"{kind}.responses.jsonl").read_text().splitlines()
            runs[kind] = [(r["benchmark"], r["id"], r["response"]) for r in map(json.loads, lines)]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert len(runs["local"]) == 12 and runs["http"] == runs["local"]
    assert len({text for _, _, text in runs["local"]}) > 6

"""Where `mathfirst eval` gets its responses: one interface over a local checkpoint (the project's sampler),
HF `generate`, vLLM (on a GPU) and any OpenAI-compatible HTTP endpoint."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from mathfirst.data.loaders import DataError, check_model_folder
from mathfirst.endpoint import CONCURRENCY, EndpointError, call_endpoint
from mathfirst.rollout import decode, generate, sample
from mathfirst.tokenizer import chat_prompt_ids

BACKENDS = ("local", "hf", "vllm", "http")


class BackendError(Exception):
    """A backend that cannot answer: printed as one line."""


class Backend(Protocol):
    name: str

    def complete(
        self, questions: list[str], n: int, temperature: float, top_p: float, max_tokens: int, seed: int
    ) -> list[list[str]]:
        """`n` responses to each user message (a one-turn chat)."""
        ...


class LocalBackend:
    """A local HF checkpoint sampled by the project's KV-cache sampler."""

    def __init__(self, path: str, batch_size: int = 64):
        from mathfirst.model import load_model

        self.model, self.tokenizer = load_model(path)
        self.name, self.batch_size = path, batch_size

    def complete(self, questions, n, temperature, top_p, max_tokens, seed):
        prompts = [chat_prompt_ids(self.tokenizer, q) for q in questions for _ in range(n)]
        rollouts = sample(self.model, self.tokenizer, prompts, max_tokens, temperature, top_p, self.batch_size, seed)
        texts = decode(self.tokenizer, rollouts)
        return [texts[i * n : (i + 1) * n] for i in range(len(questions))]


class HFGenerateBackend(LocalBackend):
    """The same checkpoint through HF `generate` (the reference engine; top-p is not applied)."""

    def complete(self, questions, n, temperature, top_p, max_tokens, seed):
        return generate(self.model, self.tokenizer, questions, n, temperature, max_tokens, self.batch_size, seed=seed)


class VLLMBackend:
    """vLLM's offline engine, for real models on a GPU (`pip install vllm`)."""

    def __init__(self, path: str):
        try:
            import torch
            from vllm import LLM
        except ImportError:
            raise BackendError("the vllm backend needs `pip install vllm` (and a GPU)") from None
        if not torch.cuda.is_available():
            raise BackendError("the vllm backend needs a GPU; use --backend local on a CPU")
        self.llm, self.name = LLM(model=path), path

    def complete(self, questions, n, temperature, top_p, max_tokens, seed):
        from vllm import SamplingParams

        params = SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)
        outputs = self.llm.chat([[{"role": "user", "content": q}] for q in questions], params, use_tqdm=False)
        return [[c.text for c in out.outputs] for out in outputs]


class HTTPBackend:
    """Any OpenAI-compatible server (vLLM, `mathfirst serve`, a hosted API): /v1/chat/completions."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        workers: int = CONCURRENCY,
        timeout_s: float = 600,
        retries: int = 2,
    ):
        self.base_url = base_url.rstrip("/")
        self.workers, self.timeout_s, self.retries = workers, timeout_s, retries
        self.api_key = os.environ.get("OPENAI_API_KEY", "")
        self.model = model or self.first_model()
        self.name = f"{self.base_url} ({self.model})"

    def request(self, path: str, body: dict | None = None) -> dict:
        try:
            return call_endpoint(self.base_url + path, body, self.timeout_s, self.retries, self.api_key)
        except EndpointError as e:
            raise BackendError(str(e)) from None

    def first_model(self) -> str:
        models = self.request("/models").get("data") or []
        if not models:
            raise BackendError(f"{self.base_url}/models lists no model; pass --served-model NAME")
        return models[0]["id"]

    def complete(self, questions, n, temperature, top_p, max_tokens, seed):
        def one(question: str) -> list[str]:
            body = {
                "model": self.model,
                "messages": [{"role": "user", "content": question}],
                "n": n,
                "temperature": temperature,
                "top_p": top_p,
                "max_tokens": max_tokens,
                "seed": seed,
            }
            choices = sorted(self.request("/chat/completions", body)["choices"], key=lambda c: c.get("index", 0))
            return [c["message"]["content"] or "" for c in choices]

        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(one, questions))


def make_backend(model: str, backend: str | None = None, served_model: str | None = None) -> Backend:
    """`--model http(s)://...` means the HTTP backend; a folder means local (or `hf` / `vllm` when asked)."""
    backend = backend or ("http" if model.startswith(("http://", "https://")) else "local")
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "http":
        return HTTPBackend(model, served_model)
    try:
        check_model_folder(model, "--model")
    except DataError as e:
        raise BackendError(str(e)) from None
    return {"local": LocalBackend, "hf": HFGenerateBackend, "vllm": VLLMBackend}[backend](model)

"""Where `mathfirst eval` gets its responses: one interface over a local checkpoint (the project's sampler),
HF `generate`, vLLM (on a GPU) and any OpenAI-compatible HTTP endpoint."""

from __future__ import annotations

import os
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from mathfirst.config import CONCURRENCY
from mathfirst.data.loaders import DataError, check_model_folder
from mathfirst.sampling.rollout import decode, generate, rollout, sample
from mathfirst.serve.client import EndpointError, call_endpoint
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


class Once:
    """Prints a note the first time it is called, to stderr; later calls are silent."""

    def __init__(self):
        self.lock, self.done = threading.Lock(), False

    def __call__(self, note: str) -> None:
        with self.lock:
            if not self.done:
                self.done = True
                print(note, file=sys.stderr)


class LocalBackend:
    """A local HF checkpoint sampled by the project's KV-cache sampler."""

    def __init__(self, path: str, batch_size: int = 64):
        from mathfirst.model import load_model

        self.model, self.tokenizer = load_model(path)
        self.name, self.batch_size = path, batch_size
        self.said = Once()

    def complete(self, questions, n, temperature, top_p, max_tokens, seed):
        """Each answer stops at `max_tokens`, or where it and its prompt fill the model's context (as an HTTP
        server of the same checkpoint stops it), said once."""
        prompts = [chat_prompt_ids(self.tokenizer, q) for q in questions for _ in range(n)]
        context = getattr(self.model.config, "max_position_embeddings", None) or 2**31
        limits = [max(0, min(max_tokens, context - len(p))) for p in prompts]
        if any(k < max_tokens for k in limits):
            self.said(f"{self.name}: the model's context is {context} tokens; an answer stops where it fills it")
        longest = max([1, *limits])
        rollouts = sample(self.model, self.tokenizer, prompts, longest, temperature, top_p, self.batch_size, seed)
        eos = self.tokenizer.eos_token_id
        rollouts = [rollout(r.prompt_ids, r.response_ids[:k], r.logprobs[:k], eos) for r, k in zip(rollouts, limits)]
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
    """Any OpenAI-compatible server (vLLM, `mathfirst serve`, a hosted API): /v1/chat/completions. Where the
    server reports its context (`max_model_len` in /v1/models, as vLLM and `mathfirst serve` do), each answer
    stops where it and its prompt fill it, as the local backend's do."""

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
        self.model, self.context = self.served_model(model)
        self.name = f"{self.base_url} ({self.model})"
        self.said = Once()

    def request(self, path: str, body: dict | None = None) -> dict:
        try:
            return call_endpoint(self.base_url + path, body, self.timeout_s, self.retries, self.api_key)
        except EndpointError as e:
            raise BackendError(str(e)) from None

    def served_model(self, model: str | None) -> tuple[str, int | None]:
        """The model to ask for (`model`, else the server's first) and its context, when the server says."""
        try:
            models = self.request("/models").get("data") or []
        except BackendError:
            if model is None:
                raise
            models = []  # a server without /models still serves the model named
        if model is None and not models:
            raise BackendError(f"{self.base_url}/models lists no model; pass --served-model NAME")
        listed = next((m for m in models if m.get("id") == model), None) if model else models[0]
        context = (listed or {}).get("max_model_len")
        return model or listed["id"], context if isinstance(context, int) else None

    def complete(self, questions, n, temperature, top_p, max_tokens, seed):
        if self.context is not None and max_tokens > self.context:
            self.say_fits()
        limit = min(max_tokens, self.context or max_tokens)

        def one(question: str) -> list[str]:
            body = {
                "model": self.model,
                "messages": [{"role": "user", "content": question}],
                "n": n,
                "temperature": temperature,
                "top_p": top_p,
                "max_tokens": limit,
                "seed": seed,
            }
            try:
                reply = call_endpoint(self.base_url + "/chat/completions", body, self.timeout_s, self.retries,
                                      self.api_key)  # fmt: skip
            except EndpointError as e:
                room = self.room(e)
                if room is None:
                    raise BackendError(str(e)) from None
                self.say_fits()
                if room <= 0:
                    return [""] * n  # the prompt alone fills the context
                reply = self.request("/chat/completions", body | {"max_tokens": room})
            choices = sorted(reply["choices"], key=lambda c: c.get("index", 0))
            return [c["message"]["content"] or "" for c in choices]

        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(one, questions))

    def room(self, refusal: EndpointError) -> int | None:
        """What is left of the context after the prompt, read off a refusal for passing it; None for any other
        error."""
        if self.context is None or refusal.error.get("code") != "context_length_exceeded":
            return None
        prompt = re.search(r"\((\d+) in the (?:prompt|messages)", str(refusal.error.get("message", "")))
        return self.context - int(prompt.group(1)) if prompt else None

    def say_fits(self) -> None:
        self.said(f"{self.name}: the server's context is {self.context} tokens; an answer stops where it fills it")


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

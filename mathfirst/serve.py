"""An OpenAI-compatible HTTP server for a checkpoint: /v1/models, /v1/completions, /v1/chat/completions,
with streaming. For trying a trained model, for `mathfirst eval --model http://...`, and for the judge."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from mathfirst.model import load_model
from mathfirst.rollout import decode, sample, stream


class CompletionRequest(BaseModel):
    model: str | None = None
    prompt: str | list[str]
    max_tokens: int = Field(256, gt=0)
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, gt=0, le=64)
    stream: bool = False
    seed: int | None = None


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, gt=0)
    max_completion_tokens: int | None = Field(None, gt=0)
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, gt=0, le=64)
    stream: bool = False
    seed: int | None = None


def create_app(checkpoint: str | Path, model_id: str | None = None) -> FastAPI:
    model, tokenizer = load_model(checkpoint)
    model.eval()
    name = model_id or Path(checkpoint).name
    lock = threading.Lock()  # one generation at a time: the model is the bottleneck anyway
    app = FastAPI(title="mathfirst serve")

    def check_model(requested: str | None) -> None:
        if requested not in (None, name):
            raise HTTPException(404, f"model {requested!r} not found; this server serves {name!r}")

    def generate(prompt_ids: list[int], n: int, max_tokens: int, temperature: float, top_p: float, seed: int):
        with lock:
            rollouts = sample(model, tokenizer, [prompt_ids] * n, max_tokens, temperature, top_p, seed=seed)
        return [
            (text, "length" if r.truncated else "stop", r) for text, r in zip(decode(tokenizer, rollouts), rollouts)
        ]

    def usage(prompt_ids: list[int], outs) -> dict:
        completion = sum(len(r.response_ids) for _, _, r in outs)
        return {"prompt_tokens": len(prompt_ids), "completion_tokens": completion,
                "total_tokens": len(prompt_ids) + completion}  # fmt: skip

    def pieces(prompt_ids: list[int], max_tokens: int, temperature: float, top_p: float, seed: int) -> Iterator[str]:
        """Decoded text as it grows, token by token (multi-byte characters wait for their last byte)."""
        with lock:
            ids, sent = [], ""
            for token in stream(model, prompt_ids, tokenizer.eos_token_id, max_tokens, temperature, top_p, seed):
                ids.append(token)
                text = tokenizer.decode(ids, skip_special_tokens=True)
                if not text.endswith("\ufffd") and len(text) > len(sent):
                    yield text[len(sent) :]
                    sent = text

    def sse(chunks: Iterator[dict]) -> StreamingResponse:
        body = (f"data: {json.dumps(c)}\n\n" for c in chunks)
        return StreamingResponse(_then_done(body), media_type="text/event-stream")

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "mathfirst"}]}

    @app.post("/v1/completions")
    def completions(req: CompletionRequest):
        check_model(req.model)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        cid, created, seed = f"cmpl-{uuid.uuid4().hex}", int(time.time()), req.seed or 0
        if req.stream:
            if req.n != 1 or len(prompts) != 1:
                raise HTTPException(400, "streaming supports one prompt and n=1")
            ids = tokenizer(prompts[0], add_special_tokens=False).input_ids

            def chunks():
                for piece in pieces(ids, req.max_tokens, req.temperature, req.top_p, seed):
                    yield {"id": cid, "object": "text_completion", "created": created, "model": name,
                           "choices": [{"index": 0, "text": piece, "finish_reason": None}]}  # fmt: skip
                yield {"id": cid, "object": "text_completion", "created": created, "model": name,
                       "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}  # fmt: skip

            return sse(chunks())
        choices, total = [], {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for p in prompts:
            ids = tokenizer(p, add_special_tokens=False).input_ids
            outs = generate(ids, req.n, req.max_tokens, req.temperature, req.top_p, seed)
            for text, finish, _ in outs:
                choices.append({"index": len(choices), "text": text, "finish_reason": finish, "logprobs": None})
            total = {k: total[k] + v for k, v in usage(ids, outs).items()}
        return {"id": cid, "object": "text_completion", "created": created, "model": name, "choices": choices,
                "usage": total}  # fmt: skip

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest):
        check_model(req.model)
        messages = [m.model_dump() for m in req.messages]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        ids = list(ids["input_ids"] if isinstance(ids, dict) else ids)
        max_tokens = req.max_completion_tokens or req.max_tokens or 256
        cid, created, seed = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), req.seed or 0
        if req.stream:
            if req.n != 1:
                raise HTTPException(400, "streaming supports n=1")

            def chunks():
                base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": name}
                yield base | {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
                for piece in pieces(ids, max_tokens, req.temperature, req.top_p, seed):
                    yield base | {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                yield base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}

            return sse(chunks())
        outs = generate(ids, req.n, max_tokens, req.temperature, req.top_p, seed)
        choices = [
            {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            for i, (text, finish, _) in enumerate(outs)
        ]
        return {"id": cid, "object": "chat.completion", "created": created, "model": name, "choices": choices,
                "usage": usage(ids, outs)}  # fmt: skip

    return app


def _then_done(body: Iterator[str]) -> Iterator[str]:
    yield from body
    yield "data: [DONE]\n\n"


def serve(checkpoint: str | Path, host: str = "127.0.0.1", port: int = 8000, model_id: str | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(checkpoint, model_id), host=host, port=port, log_level="info")

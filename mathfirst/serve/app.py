"""An OpenAI-compatible HTTP server for a checkpoint: /v1/models, /v1/completions, /v1/chat/completions (with
streaming) and /health. For trying a trained model, for `mathfirst eval --model http://...`, and for the judge.
Concurrent requests are sampled together (batcher.py); each is checked against the model's context, the
server's limits and its memory budget before anything is allocated for it, and errors take OpenAI's shape.
Every request must arrive whole in time and within MAX_BODY_BYTES, whatever its framing (BodyGuard,
TimelyH11), so a client that sends too much, too slowly or never cannot hold the server or block others."""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import h11
import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from mathfirst.config import ServeSettings
from mathfirst.model import load_model
from mathfirst.plan.plan import GB, available_ram
from mathfirst.sampling.rollout import Rollout
from mathfirst.serve.batcher import Batcher, Job, Refused

DEFAULT_MAX_TOKENS = 256  # when a request names none (and the context leaves room for it)
MAX_BODY_BYTES = 4 * 2**20
READ_TIMEOUT_S = 30.0  # for a request's head to arrive whole, and then for its body
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               408: "timeout", 413: "invalid_request_error", 429: "rate_limit_error", 503: "server_error",
               504: "timeout"}  # fmt: skip


class CompletionRequest(BaseModel):
    model: str | None = None
    prompt: str | list[str]
    max_tokens: int | None = Field(None, gt=0)
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, gt=0)
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
    n: int = Field(1, gt=0)
    stream: bool = False
    seed: int | None = None


def error(status: int, message: str, code: str | None = None, param: str | None = None) -> JSONResponse:
    body = {"message": message, "type": ERROR_TYPES.get(status, "invalid_request_error"), "param": param, "code": code}
    return JSONResponse({"error": body}, status)


def sampler_budget(model: torch.nn.Module, memory_gb: float | None) -> int:
    """Bytes the batches may take: `memory_gb`, else half of the GPU's or the machine's free memory now."""
    if memory_gb is not None:
        return int(memory_gb * GB)
    free = torch.cuda.mem_get_info()[0] if model.device.type == "cuda" else available_ram()
    return free // 2


class Server:
    """One served model: its batcher, its limits and the routes' handlers."""

    def __init__(self, checkpoint: str | Path, model_id: str | None, settings: ServeSettings):
        self.settings = settings
        self.model, self.tokenizer = load_model(checkpoint)
        self.model.eval()
        self.name = model_id or Path(checkpoint).name
        self.context = getattr(self.model.config, "max_position_embeddings", None) or 2**31
        self.cap = min(settings.max_tokens or self.context, self.context)
        self.batcher = Batcher(
            self.model, self.tokenizer, sampler_budget(self.model, settings.memory_gb), settings.max_batch,
            settings.max_queue, settings.window_s,
        )  # fmt: skip

    def check_model(self, requested: str | None) -> None:
        if requested not in (None, self.name):
            raise HTTPException(404, f"model {requested!r} not found; this server serves {self.name!r}")

    def new_tokens(self, requested: int | None, prompt_tokens: int) -> int:
        """The request's max_tokens, checked against the server's cap and the model's context."""
        if requested is not None and requested > self.cap:
            raise Refused(400, f"max_tokens is {requested}; this server allows at most {self.cap}", "max_tokens")
        room = self.context - prompt_tokens
        if room <= 0 or (requested is not None and requested > room):
            asked = f"you requested {prompt_tokens + (requested or 0)} tokens ({prompt_tokens} in the prompt, "
            raise Refused(
                400,
                f"This model's maximum context length is {self.context} tokens. However, {asked}"
                f"{requested or 0} in the completion). Please reduce the prompt or max_tokens.",
                "context_length_exceeded",
            )
        return requested or min(DEFAULT_MAX_TOKENS, room, self.cap)

    def job(self, ids: list[int], n: int, requested: int | None, temperature: float, top_p: float, seed: int | None):
        seed = secrets.randbits(62) if seed is None else seed
        return Job(ids, n, self.new_tokens(requested, len(ids)), temperature, top_p, seed)

    async def run(self, jobs: list[Job]) -> list[list[Rollout]]:
        """Submit `jobs` (all or none) and wait for their rollouts, at most the request timeout."""
        if sum(j.n for j in jobs) > self.settings.max_batch:
            raise Refused(400, f"prompts x n is over {self.settings.max_batch}, the most this server samples at once")
        futures = [asyncio.wrap_future(self.batcher.submit(j)) for j in jobs]
        try:
            return await asyncio.wait_for(asyncio.gather(*futures), self.settings.request_timeout_s)
        except TimeoutError:
            raise Refused(504, f"the request took over {self.settings.request_timeout_s:.0f} s") from None

    def streamed(self, one: Job) -> AsyncIterator[tuple[str, str | None]]:
        """Submit `one` now (so that a refusal is an HTTP error, not a broken stream), then yield
        (text piece, None) as its text grows token by token, and ("", finish reason) at the end."""
        loop, tokens = asyncio.get_running_loop(), asyncio.Queue()
        one.on_token = lambda token: loop.call_soon_threadsafe(tokens.put_nowait, token)
        future = asyncio.wrap_future(self.batcher.submit(one))

        async def pieces():
            ids, sent = [], ""
            while (token := await asyncio.wait_for(tokens.get(), self.settings.request_timeout_s)) is not None:
                ids.append(token)
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                if not text.endswith("\ufffd") and len(text) > len(sent):  # multi-byte characters wait for their end
                    yield text[len(sent) :], None
                    sent = text
            yield "", finish((await future)[0])

        return pieces()

    def text(self, rollout: Rollout) -> str:
        return self.tokenizer.decode(rollout.response_ids, skip_special_tokens=True)

    def health(self) -> dict:
        b = self.batcher
        return {"status": "ok", "queued_rows": b.queued_rows(), "batches": b.batches, "rows_done": b.rows_done}

    def models(self) -> dict:
        return {"object": "list", "data": [{"id": self.name, "object": "model", "created": 0, "owned_by": "mathfirst",
                                            "max_model_len": self.context}]}  # fmt: skip

    async def completions(self, req: CompletionRequest):
        self.check_model(req.model)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        ids = [self.tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
        jobs = [self.job(i, req.n, req.max_tokens, req.temperature, req.top_p, req.seed) for i in ids]
        base = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": self.name}  # fmt: skip
        if req.stream:
            if len(jobs) != 1 or req.n != 1:
                raise Refused(400, "streaming supports one prompt and n=1")
            pieces = self.streamed(jobs[0])

            async def chunks():
                async for piece, reason in pieces:
                    yield base | {"choices": [{"index": 0, "text": piece, "finish_reason": reason}]}

            return sse(chunks())
        results = await self.run(jobs)
        rollouts = [r for group in results for r in group]
        choices = [{"index": i, "text": self.text(r), "finish_reason": finish(r), "logprobs": None}
                   for i, r in enumerate(rollouts)]  # fmt: skip
        totals = [usage(len(i), group) for i, group in zip(ids, results)]
        return base | {"choices": choices, "usage": {k: sum(t[k] for t in totals) for k in totals[0]}}

    async def chat(self, req: ChatRequest):
        self.check_model(req.model)
        messages = [m.model_dump() for m in req.messages]
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        ids = list(ids["input_ids"] if isinstance(ids, dict) else ids)
        one = self.job(ids, req.n, req.max_completion_tokens or req.max_tokens, req.temperature, req.top_p, req.seed)
        base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": self.name}
        if req.stream:
            if req.n != 1:
                raise Refused(400, "streaming supports n=1")
            pieces = self.streamed(one)

            async def chunks():
                base_chunk = base | {"object": "chat.completion.chunk"}
                yield base_chunk | {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
                async for piece, reason in pieces:
                    delta = {"content": piece} if piece else {}
                    yield base_chunk | {"choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}

            return sse(chunks())
        (rollouts,) = await self.run([one])
        choices = [{"index": i, "message": {"role": "assistant", "content": self.text(r)}, "finish_reason": finish(r)}
                   for i, r in enumerate(rollouts)]  # fmt: skip
        return base | {"object": "chat.completion", "choices": choices, "usage": usage(len(ids), rollouts)}


def sse(chunks: AsyncIterator[dict]) -> StreamingResponse:
    """Server-sent events: one `data:` line per chunk, then [DONE]."""

    async def body():
        async for c in chunks:
            yield f"data: {json.dumps(c)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream")


def usage(prompt_tokens: int, rollouts: list[Rollout]) -> dict:
    completion = sum(len(r.response_ids) for r in rollouts)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion}


async def refused(_: Request, e: Refused) -> JSONResponse:
    return error(e.status, str(e), e.code)


async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
    return error(e.status_code, str(e.detail))


async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
    first = e.errors()[0] if e.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
    return error(400, f"invalid request: {where or 'body'}: {first.get('msg', 'malformed')}", param=where)


def key_guard(api_key: str | None):
    """Middleware: the API key on every route but /health."""

    async def guard(request: Request, call_next):
        if api_key and request.url.path != "/health":
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return error(401, "missing or incorrect API key (send 'Authorization: Bearer KEY')", "invalid_api_key")
        return await call_next(request)

    return guard


def create_app(
    checkpoint: str | Path,
    model_id: str | None = None,
    settings: ServeSettings | None = None,
    read_timeout_s: float = READ_TIMEOUT_S,
) -> FastAPI:
    """The FastAPI app serving `checkpoint`: OpenAI's completions and chat routes, /v1/models and /health."""
    settings = settings or ServeSettings()
    server = Server(checkpoint, model_id, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        server.batcher.close()

    app = FastAPI(title="mathfirst serve", lifespan=lifespan)
    # Added first, so inside the key guard: the key is checked before any body is read, and BodyGuard's errors
    # reach FastAPI's handlers as they are (BaseHTTPMiddleware would wrap them in exception groups)
    app.add_middleware(BodyGuard, limit=MAX_BODY_BYTES, timeout_s=read_timeout_s)
    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(StarletteHTTPException, http_error)  # FastAPI's own (a subclass) and unknown routes
    app.add_exception_handler(RequestValidationError, invalid)
    app.middleware("http")(key_guard(settings.api_key or os.environ.get("MATHFIRST_API_KEY") or None))
    app.get("/health")(server.health)
    app.get("/v1/models")(server.models)
    app.post("/v1/completions")(server.completions)
    app.post("/v1/chat/completions")(server.chat)
    return app


def finish(rollout: Rollout) -> str:
    return "length" if rollout.truncated else "stop"


class BodyGuard:
    """Every request body bounded, whatever its framing: over `limit` bytes, declared (Content-Length) or counted
    as chunks arrive, is a 413; not whole `timeout_s` after the request's head, a 408. Either way the rest is
    never read."""

    def __init__(self, app: ASGIApp, limit: int, timeout_s: float):
        self.app, self.limit, self.timeout_s = app, limit, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self.too_large()(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline, received, whole = loop.time() + self.timeout_s, 0, False

        async def bounded() -> Message:
            nonlocal received, whole
            if whole:  # the body is in: later calls wait for a disconnect, as long as a stream lasts
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the request body did not arrive within {self.timeout_s:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                whole = not message.get("more_body", False)
                if received > self.limit:
                    raise HTTPException(413, self.too_large_message())
            return message

        await self.app(scope, bounded, send)

    def too_large_message(self) -> str:
        return f"the request body is over {self.limit // 2**20} MiB"

    def too_large(self) -> JSONResponse:
        return error(413, self.too_large_message())


class TimelyH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on each request's head: a client that connects, or finishes a
    request, and then sends the next head slowly or never is disconnected `head_timeout_s` later. A request
    answered before its body was read whole ends its connection (uvicorn would go on reading the rest)."""

    def __init__(self, *args, head_timeout_s: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.head_timeout_s = head_timeout_s
        self.head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.wait_for_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is in; BodyGuard bounds the body
            self.cancel_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.SEND_BODY:  # answered before its body was read (413, 408, 401): no more
            self.transport.close()
        else:
            self.wait_for_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_deadline()
        super().connection_lost(exc)

    def wait_for_head(self) -> None:
        self.cancel_deadline()
        self.head_deadline = self.loop.call_later(self.head_timeout_s, self.too_slow)

    def cancel_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def too_slow(self) -> None:
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def make_server(
    checkpoint: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_id: str | None = None,
    settings: ServeSettings | None = None,
    read_timeout_s: float = READ_TIMEOUT_S,
):
    """The uvicorn server `serve` runs (a test may run it in a thread, with shorter timeouts)."""
    import uvicorn

    settings = settings or ServeSettings()
    app = create_app(checkpoint, model_id, settings, read_timeout_s)
    protocol = functools.partial(TimelyH11, head_timeout_s=read_timeout_s)
    config = uvicorn.Config(app, host=host, port=port, log_level="info", http=protocol,
                            timeout_graceful_shutdown=int(settings.request_timeout_s))  # fmt: skip
    return uvicorn.Server(config)


def serve(
    checkpoint: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_id: str | None = None,
    settings: ServeSettings | None = None,
) -> None:
    """Run the server until SIGINT/SIGTERM; on shutdown, requests in flight get up to the request timeout."""
    make_server(checkpoint, host, port, model_id, settings).run()


def launch(checkpoint: str | Path, *options: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """`mathfirst serve CHECKPOINT OPTIONS` in a child process on a free loopback port, once it answers
    /health; returns the process and its base URL (…/v1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "mathfirst.cli", "serve", str(checkpoint), "--port", str(port), *options]
    log = tempfile.TemporaryFile()  # not a pipe: a pipe nobody reads would block the server once full
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)
            return proc, f"{url}/v1"
        except OSError:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"mathfirst serve exited: {log.read().decode()[-2000:]}") from None
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"mathfirst serve did not answer /health within 120 s: {' '.join(command)}")

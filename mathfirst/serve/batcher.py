"""The server's scheduler: requests of many clients are gathered into one batch of the native sampler, each
row with its own settings and seed, within a memory budget for the batch (its KV cache, logits and prefill).
One worker thread runs the model; a request is refused before anything is allocated for it."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.plan.plan import model_shape, prefill_bytes, sampling_bytes
from mathfirst.sampling.decoder import copies_every_weight
from mathfirst.sampling.rollout import RowSettings, sample_batch


class Refused(Exception):
    """A request the server will not take; `status` is the HTTP answer it gets."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.code = status, code


@dataclass
class Job:
    """One request: `n` samples of one prompt. `on_token` (streaming) sees each new token, then None."""

    prompt: list[int]
    n: int
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    on_token: Callable[[int | None], None] | None = None
    future: Future = field(default_factory=Future)  # -> list[Rollout], one per sample


class Batcher:
    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        budget_bytes: int,
        max_batch: int,
        max_queue: int,
        window_s: float,
    ):
        self.model, self.tokenizer = model, tokenizer
        self.shape = model_shape(model.config)
        self.dtype_bytes, self.device = model.dtype.itemsize, model.device.type
        self.budget, self.max_batch, self.max_queue, self.window_s = budget_bytes, max_batch, max_queue, window_s
        self.queue: deque[Job] = deque()
        self.wake = threading.Condition()
        self.closed = False
        self.batches = self.rows_done = 0
        self.worker = threading.Thread(target=self.run, name="mathfirst-batcher", daemon=True)
        self.worker.start()

    def batch_bytes(self, jobs: list[Job]) -> int:
        """What sampling `jobs` together allocates: every row's KV cache is as long as the longest prompt plus
        the largest max_tokens (the decoder's cache is one block)."""
        rows = sum(j.n for j in jobs)
        width = max(len(j.prompt) for j in jobs)
        length = width + max(j.max_tokens for j in jobs)
        copies_all = copies_every_weight(self.device, self.dtype_bytes, False, self.shape.vocab * self.shape.hidden)
        sampler = sampling_bytes(self.shape, rows, length, self.dtype_bytes, copies_all)
        return sum(sampler.values()) + prefill_bytes(self.shape, len(jobs), width, self.dtype_bytes)

    def queued_rows(self) -> int:
        return sum(j.n for j in self.queue)

    def submit(self, job: Job) -> Future:
        """Queue `job`, or refuse it: 400 if it could never fit, 429 if the queue is full (an empty queue takes
        any job that fits), 503 when closing."""
        if job.n > self.max_batch:
            raise Refused(400, f"n is {job.n}; this server samples at most {self.max_batch} rows at once", "n")
        need = self.batch_bytes([job])
        if need > self.budget:
            raise Refused(
                400,
                f"this request needs {need / 2**20:.0f} MiB to sample (KV cache of {job.n} x "
                f"{len(job.prompt) + job.max_tokens} tokens); the server's budget is {self.budget / 2**20:.0f} "
                "MiB: ask for fewer max_tokens or a smaller n",
                "memory_budget_exceeded",
            )
        with self.wake:
            if self.closed:
                raise Refused(503, "the server is shutting down")
            if self.queue and self.queued_rows() + job.n > self.max_queue:
                raise Refused(429, f"the server is busy ({self.queued_rows()} rows waiting); retry later")
            self.queue.append(job)
            self.wake.notify()
        return job.future

    def take(self) -> list[Job] | None:
        """The next batch, first come first served: jobs from the queue's head while the batch fits in rows
        and bytes. Waits `window_s` after the first arrival so that concurrent requests meet. None when closed."""
        with self.wake:
            while not self.queue and not self.closed:
                self.wake.wait()
            if self.closed:
                return None
        time.sleep(self.window_s)
        with self.wake:
            batch: list[Job] = []
            while self.queue:
                job = self.queue[0]
                if job.future.cancelled():
                    self.queue.popleft()
                    continue
                more = batch + [job]
                if batch and (sum(j.n for j in more) > self.max_batch or self.batch_bytes(more) > self.budget):
                    break
                batch.append(self.queue.popleft())
            return [j for j in batch if j.future.set_running_or_notify_cancel()]

    def run(self) -> None:
        while (batch := self.take()) is not None:
            if batch:
                self.sample(batch)

    def sample(self, batch: list[Job]) -> None:
        """Sample `batch` in one call; each job gets its rollouts, or the error, never a dead worker."""
        prompts = [j.prompt for j in batch for _ in range(j.n)]
        longest = max(j.max_tokens for j in batch)
        owners = [j for j in batch for _ in range(j.n)]
        settings = RowSettings(
            temperature=torch.tensor([j.temperature for j in owners]),
            top_p=torch.tensor([j.top_p for j in owners]),
            uniforms=torch.cat([draws(j, longest) for j in batch]),
            limits=torch.tensor([j.max_tokens for j in owners]),
        )
        streams = Streams(owners, self.tokenizer.eos_token_id)
        try:
            rollouts = sample_batch(
                self.model, prompts, self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, longest,
                rows_settings=settings, on_step=streams.step if streams.open else None,
            )  # fmt: skip
        except Exception as e:  # noqa: BLE001 - the error goes to the clients; the worker goes on
            streams.close_all()
            for job in batch:
                job.future.set_exception(e)
            return
        streams.close_all()
        self.batches += 1
        self.rows_done += len(prompts)
        start = 0
        for job in batch:
            job.future.set_result(rollouts[start : start + job.n])
            start += job.n

    def close(self) -> None:
        """Refuse new requests, cancel the queued ones (503) and let the running batch finish."""
        with self.wake:
            self.closed = True
            while self.queue:
                job = self.queue.popleft()
                if job.future.set_running_or_notify_cancel():
                    job.future.set_exception(Refused(503, "the server shut down before this request ran"))
            self.wake.notify_all()
        self.worker.join(timeout=60)


def draws(job: Job, length: int) -> torch.Tensor:
    """The job's own uniform draws [n, length] from its seed: its samples do not depend on its batch-mates."""
    generator = torch.Generator().manual_seed(job.seed)
    out = torch.zeros((job.n, length))
    out[:, : job.max_tokens] = torch.rand((job.n, job.max_tokens), generator=generator)
    return out


class Streams:
    """Forwards each streaming row's tokens to its job as they are sampled, until its EOS or its limit."""

    def __init__(self, owners: list[Job], eos_id: int):
        self.eos_id = eos_id
        self.open = {row: [job, 0] for row, job in enumerate(owners) if job.on_token is not None}

    def step(self, rows: list[int], tokens: list[int]) -> None:
        for row, token in zip(rows, tokens):
            state = self.open.get(row)
            if state is None:
                continue
            job, sent = state
            if token == self.eos_id:
                self.close(row)
                continue
            job.on_token(token)
            state[1] = sent + 1
            if sent + 1 >= job.max_tokens:
                self.close(row)

    def close(self, row: int) -> None:
        self.open.pop(row)[0].on_token(None)

    def close_all(self) -> None:
        for row in list(self.open):
            self.close(row)

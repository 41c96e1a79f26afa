"""Streaming group sampling: one decode loop whose finished rows are refilled with the next groups' responses,
instead of rounds that each wait for their longest response. A group is handed back as soon as its last row
ends (to be verified), and the caller decides, group by group, what to sample next."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from mathfirst.sampling.decoder import StaticDecoder, supported
from mathfirst.sampling.rollout import Rollout, pick_tokens, rollout


@dataclass
class GroupRequest:
    """`n` responses to one prompt; their draws come from `seed` alone, so a group samples the same responses
    whatever else shares the batch and whenever it is admitted."""

    prompt: list[int]
    n: int
    seed: int
    key: object = None  # the caller's, handed back with the group


@dataclass
class Slot:
    """One row of the batch: the group it samples for and what it has sampled so far."""

    group: int
    member: int  # its index within the group
    begin: int  # the cache slot its prompt starts at
    tokens: list[int]
    logprobs: list[float]


class StreamingSampler:
    """Sample groups in one batch of `capacity` rows with a static KV cache of `columns` slots, of which the
    first `prompt_room` hold the first prompts (a longer prompt waits until the batch has decoded far enough
    to place it). `next_group()` gives the next group to admit (None: nothing for now; it is asked again as
    rows finish); `on_group(request, rollouts)` receives each finished group, in the order groups finish."""

    def __init__(self, model: PreTrainedModel, pad_id: int, eos_id: int, capacity: int, max_new_tokens: int,
                 temperature: float, top_p: float, columns: int, prompt_room: int = 0):  # fmt: skip
        if not supported(model):
            raise ValueError(
                f"streaming sampling needs the native decoder, which does not support {type(model).__name__}"
            )
        self.model, self.pad_id, self.eos_id = model, pad_id, eos_id
        self.capacity, self.max_new_tokens, self.columns = capacity, max_new_tokens, columns
        self.temperature, self.top_p, self.prompt_room = temperature, top_p, prompt_room

    @torch.inference_mode()
    def run(
        self, next_group: Callable[[], GroupRequest | None], on_group: Callable[[GroupRequest, list[Rollout]], None]
    ) -> None:
        """Sample until `next_group` has nothing more and every admitted group has finished."""
        was_training = self.model.training
        self.model.eval()
        self.groups: dict[int, tuple[GroupRequest, list[Rollout | None]]] = {}  # groups in flight, by index
        self.admitted = 0
        waiting = next_group()
        while waiting is not None:  # one decode session per cache; a new one when the last ran out of columns
            if waiting.n > self.capacity or len(waiting.prompt) + self.max_new_tokens > self.columns:
                raise ValueError(f"a group of {waiting.n} x {len(waiting.prompt)} prompt tokens does not fit a "
                                 f"batch of {self.capacity} rows x {self.columns} cache slots")  # fmt: skip
            waiting = self.session(waiting, next_group, on_group)
        self.model.train(was_training)

    def session(
        self,
        first: GroupRequest,
        next_group: Callable[[], GroupRequest | None],
        on_group: Callable[[GroupRequest, list[Rollout]], None],
    ) -> GroupRequest | None:
        """Decode with refills until nothing is left or the cache's columns run out; returns the group that
        could not be admitted (for the next session), or None."""
        model, device = self.model, self.model.device
        decoder = StaticDecoder(model, self.capacity, self.columns)
        decoder.keep_rows(torch.zeros(0, dtype=torch.long, device=device))  # rows are added as groups come
        self.slots: list[Slot | None] = []
        self.valid = torch.zeros((0, self.columns), dtype=torch.bool, device=device)
        self.position = torch.zeros(0, dtype=torch.long, device=device)
        self.uniforms = torch.zeros((0, self.max_new_tokens), device=device)
        self.logits = torch.zeros((0, model.config.vocab_size), device=device)
        self.end = max(self.prompt_room, len(first.prompt))  # the next column; a new prompt ends just before it
        waiting: GroupRequest | None = first
        while True:
            waiting = self.admit(decoder, waiting, next_group)
            if waiting is None:
                self.compact(decoder)
            self.shift_left(decoder)
            if not any(self.slots):
                return waiting
            self.decode_step(decoder, on_group)

    def admit(self, decoder: StaticDecoder, waiting: GroupRequest | None,
              next_group: Callable[[], GroupRequest | None]) -> GroupRequest | None:  # fmt: skip
        """Prefill waiting groups into free rows (adding rows up to `capacity`) while they fit; returns the
        group left waiting, if any."""
        waiting = waiting or next_group()
        while waiting is not None:
            free = [s for s, slot in enumerate(self.slots) if slot is None]
            missing = waiting.n - len(free)
            fits = len(waiting.prompt) <= self.end and self.end + self.max_new_tokens <= self.columns
            if missing > self.capacity - len(self.slots) or not fits:
                return waiting
            if missing > 0:
                free += self.add_rows(decoder, missing)
            self.prefill(decoder, waiting, free[: waiting.n])
            waiting = next_group()
        return None

    def add_rows(self, decoder: StaticDecoder, n: int) -> list[int]:
        """`n` more free rows at the end of the batch; returns their indices."""
        decoder.append_rows(n)
        device = self.valid.device
        self.valid = torch.cat([self.valid, torch.ones((n, self.columns), dtype=torch.bool, device=device)])
        self.position = torch.cat([self.position, torch.zeros(n, dtype=torch.long, device=device)])
        self.uniforms = torch.cat([self.uniforms, torch.zeros((n, self.max_new_tokens), device=device)])
        self.logits = torch.cat([self.logits, self.logits.new_zeros((n, self.logits.shape[1]))])
        self.slots += [None] * n
        return list(range(len(self.slots) - n, len(self.slots)))

    def compact(self, decoder: StaticDecoder) -> None:
        """Drop the free rows once they are a quarter of the batch, so that a few long answers do not drag
        the rest along (as the batch sampler does)."""
        live = [s for s, slot in enumerate(self.slots) if slot is not None]
        if (len(self.slots) - len(live)) * 4 < len(self.slots):
            return
        rows = torch.tensor(live, dtype=torch.long, device=self.valid.device)
        decoder.keep_rows(rows)
        self.valid, self.position, self.uniforms, self.logits = (
            x[rows] for x in (self.valid, self.position, self.uniforms, self.logits)
        )
        self.slots = [self.slots[s] for s in live]

    def shift_left(self, decoder: StaticDecoder) -> None:
        """Once every live row's first slot is far enough along, move the cache's slots left by that much
        (keeping `prompt_room` before `end`), so that attention reads fewer empty slots and the cache never
        runs out of slots while rows keep coming."""
        begin = min((slot.begin for slot in self.slots if slot is not None), default=0)
        shift = min(begin, self.end - self.prompt_room)
        if shift < self.max_new_tokens // 2:
            return
        decoder.shift_slots(shift, self.end)
        n = self.end - shift
        self.valid[:, :n] = self.valid[:, shift : self.end].clone()
        self.valid[:, n:] = True
        for slot in self.slots:
            if slot is not None:
                slot.begin -= shift
        self.end = n

    def prefill(self, decoder: StaticDecoder, group: GroupRequest, rows: list[int]) -> None:
        """Write the group's prompt into the cache of its first row, ending at column `end`, and copy it to the
        others; each row gets the group's draws."""
        index = self.admitted
        self.admitted += 1
        self.groups[index] = (group, [None] * group.n)
        length, end = len(group.prompt), self.end
        first = torch.tensor(rows[:1], device=self.valid.device)
        self.valid[rows] = False
        self.valid[rows, end - length :] = True  # its prompt, then every token it samples
        ids = torch.tensor([group.prompt], device=self.valid.device)
        positions = torch.arange(length, device=self.valid.device)[None]
        self.logits[rows] = decoder.forward(ids, positions, self.valid[first, :end], rows=first, begin=end - length)[0]
        decoder.copy_row(rows[0], rows[1:], end - length, end)
        self.position[rows] = length - 1
        draws = torch.Generator(device=self.uniforms.device).manual_seed(group.seed)
        self.uniforms[rows] = torch.rand((group.n, self.max_new_tokens), generator=draws, device=self.uniforms.device)
        for k, s in enumerate(rows):
            self.slots[s] = Slot(index, k, end - length, [], [])

    def decode_step(self, decoder: StaticDecoder, on_group: Callable[[GroupRequest, list[Rollout]], None]) -> None:
        """Draw one token for every live row, hand back the groups that finished, then feed the tokens."""
        live = [s for s, slot in enumerate(self.slots) if slot is not None]
        steps = torch.tensor([len(self.slots[s].tokens) for s in live], device=self.logits.device)
        rows = torch.tensor(live, device=self.logits.device)
        token, logp = pick_tokens(self.logits[rows], self.temperature, self.top_p, uniforms=self.uniforms[rows, steps])
        fed = torch.full((len(self.slots),), self.pad_id, dtype=torch.long, device=rows.device)
        fed[rows] = token
        for s, t, lp in zip(live, token.tolist(), logp.tolist()):
            slot = self.slots[s]
            slot.tokens.append(t)
            slot.logprobs.append(lp)
            if t == self.eos_id or len(slot.tokens) == self.max_new_tokens:
                self.finish_row(s, on_group)
        begin = min((slot.begin for slot in self.slots if slot is not None), default=None)
        if begin is None:
            return  # (a row admitted at column c is done by column c + max_new_tokens - 1 < columns)
        self.position = (self.position + 1).clamp(max=self.columns - 1)  # free rows' positions stay in range
        valid = self.valid[:, : self.end + 1]
        self.logits = decoder.forward(fed[:, None], self.position[:, None], valid, begin=begin)
        self.end += 1

    def finish_row(self, s: int, on_group: Callable[[GroupRequest, list[Rollout]], None]) -> None:
        slot = self.slots[s]
        group, done = self.groups[slot.group]
        done[slot.member] = rollout(group.prompt, slot.tokens, slot.logprobs, self.eos_id)
        self.slots[s] = None
        if all(r is not None for r in done):
            del self.groups[slot.group]
            on_group(group, done)

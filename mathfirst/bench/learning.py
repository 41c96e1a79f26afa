"""One contender of the learning race (`mathfirst bench --model DIR --learning MINUTES`), alone in a fresh process:
    python -m mathfirst.bench.learning ours|trl RACE_JSON  ->  one JSON line: its learning curve
Both train from the same model folder on the config's rl_math prompts with its settings, for the same training
seconds. The clock stops while the same held-out math tasks are measured the same way (greedy, our sampler, our
verifier): at the start, every `every_s` training seconds and once the budget is spent, which ends the training."""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

from mathfirst.config import ConfigError, RLConfig, RunConfig, load_config
from mathfirst.data.assemble import rl_prompts, stage_seed
from mathfirst.eval.curve import LearningCurve
from mathfirst.model import load_model
from mathfirst.rl.loop import dapo_rewards, lr_at, pick_tasks, train_rl
from mathfirst.train.precision import compute_dtype

if TYPE_CHECKING:
    from trl import GRPOConfig

FOREVER = 10**9  # steps and checkpoint interval: the clock ends the training, and nothing is saved
TRL_PROMPTS = 4096  # rows of TRL's dataset, drawn as ours draws its prompts (TRL goes round again if it needs more)


@dataclass(frozen=True)
class Race:
    model_dir: str
    config: str
    budget_s: float  # training seconds per contender
    every_s: float  # training seconds between held-out points

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> Race:
        return Race(**json.loads(text))


def race_config(race: Race) -> RunConfig:
    """The race's config: its model, rl_math until the clock stops it (no checkpoints, greedy points), math only."""
    changes = {
        "model": {"init": race.model_dir},
        "eval": {"domains": ["math"]},
        "rl_math": {"steps": FOREVER, "save_every": FOREVER, "eval_samples": 0},
    }
    cfg = load_config(race.config, changes)
    rcfg = cfg.rl_math
    uneven = rcfg.prompts_per_step % min(rcfg.mini_batch_groups, rcfg.prompts_per_step)  # TRL's are all equal
    if rcfg.loss != "dapo" or rcfg.lora is not None or uneven:
        raise ConfigError(
            f"{race.config}: the learning race needs rl_math with loss dapo, no lora, and prompts_per_step a "
            "multiple of mini_batch_groups"
        )
    return cfg


def updates_per_step(rcfg: RLConfig) -> int:
    """Optimizer steps per RL step: one per mini-batch of groups."""
    return -(-rcfg.prompts_per_step // rcfg.mini_batch_groups)


class TimeUp(Exception):
    """The training budget is spent (raised once its last point is measured)."""


class TimedCurve(LearningCurve):
    """A learning curve on a training clock that stops while it evaluates: the first point starts it; a point is
    due every `every_s` training seconds and once `budget_s` is spent, after which TimeUp ends the training."""

    def __init__(self, cfg: RunConfig, folder: Path, race: Race):
        super().__init__(cfg, cfg.rl_math, folder)
        self.budget_s, self.every_s = race.budget_s, race.every_s
        self.started = self.paused = 0.0
        self.points: list[dict] = []

    def train_s(self) -> float:
        """Seconds since the first point, evaluation excluded."""
        return time.perf_counter() - self.started - self.paused

    def due(self, step: int) -> bool:
        """The first point, then point k once k x every_s training seconds have passed (or the budget has)."""
        return not self.points or self.train_s() >= min(len(self.points) * self.every_s, self.budget_s)

    def measure(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, step: int, train_s: float = 0.0
    ) -> dict:
        """Measure a point at this clock's time (the caller's `train_s` is not used: both contenders are timed
        alike), with the clock stopped; raise TimeUp after the budget's last."""
        t0 = time.perf_counter()
        if not self.points:
            self.started = t0
        spent = self.train_s()
        point = super().measure(model, tokenizer, step, spent)
        self.points.append({"step": step} | point)
        self.paused += time.perf_counter() - t0
        if spent >= self.budget_s:
            raise TimeUp
        return point


def race_point(point: dict) -> dict:
    """A curve point as the race reports it: step, training seconds, greedy math accuracy and its 95% interval."""
    math = point["domains"]["math"]
    return {"step": point["step"], "train_s": point["train_s"], "accuracy": math["greedy"],
            "ci95": math["greedy_ci95"], "n": math["n"], "eval_s": point["eval_s"]}  # fmt: skip


def ours(race: Race) -> list[dict]:
    """Our rl_math DAPO loop (train_rl), until the clock stops it."""
    cfg = race_config(race)
    model, tok = load_model(race.model_dir)
    dtype = compute_dtype(cfg.model.dtype, model.device)
    pools, seed = rl_prompts(cfg, "rl_math"), stage_seed(cfg, "rl_math")
    with tempfile.TemporaryDirectory() as tmp:
        curve = TimedCurve(cfg, Path(tmp), race)
        try:
            train_rl(model, tok, cfg.rl_math, pools, Path(tmp), seed, "ours", dtype=dtype, curve_for=lambda _: curve)
        except TimeUp:
            pass
    return [race_point(p) for p in curve.points]


def trl_args(rcfg: RLConfig, out: str, seed: int, dtype: torch.dtype) -> GRPOConfig:
    """TRL's GRPOConfig with our DAPO settings: loss_type dapo, clip 0.2 / 0.28 and the dual clip (`delta`), no KL,
    advantages scaled by the group's std, the same group size, batch, optimizer steps per batch, response length,
    sampling and gradient clip; no checkpoints or logging, which ours skips too. TRL runs one group per forward
    and accumulates a mini-batch's groups into each optimizer step (its whole batch at once holds full-vocabulary
    logits for every response: 8 x 16 responses of SmolLM2 took 23 GB and were killed for memory)."""
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=out, loss_type="dapo", epsilon=rcfg.clip_low, epsilon_high=rcfg.clip_high, delta=rcfg.clip_c,
        beta=rcfg.kl_coef, scale_rewards="group" if rcfg.norm_adv_by_std else "none",
        mask_truncated_completions=rcfg.mask_truncated, num_generations=rcfg.group_size,
        per_device_train_batch_size=rcfg.group_size, steps_per_generation=rcfg.prompts_per_step,
        gradient_accumulation_steps=rcfg.prompts_per_step // updates_per_step(rcfg), num_iterations=rcfg.ppo_epochs,
        max_completion_length=rcfg.max_new_tokens, temperature=rcfg.temperature, top_p=rcfg.top_p, top_k=0,
        max_grad_norm=rcfg.grad_clip, activation_checkpointing=rcfg.gradient_checkpointing, max_steps=FOREVER,
        seed=seed, shuffle_dataset=False, use_cpu=not torch.cuda.is_available(), bf16=dtype == torch.bfloat16,
        fp16=False, report_to="none", save_strategy="no", logging_steps=FOREVER, disable_tqdm=True,
    )  # fmt: skip


def our_optimizer(
    model: PreTrainedModel, rcfg: RLConfig
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """Our AdamW and warm-up (rl.lr_at, per RL step) for TRL: HF's own warm-up would start at a learning rate of 0."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=rcfg.lr, weight_decay=rcfg.weight_decay, betas=rcfg.adam_betas)
    updates = updates_per_step(rcfg)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: lr_at(k // updates, rcfg) / rcfg.lr)


class ClockedEvaluation(TrainerCallback):
    """Measures TRL's curve before its first step and after every RL step (`updates` optimizer steps) that is due."""

    def __init__(self, curve: TimedCurve, tokenizer: PreTrainedTokenizerBase, updates: int):
        self.curve, self.tokenizer, self.updates = curve, tokenizer, updates

    def on_train_begin(self, args, state, control, model=None, **kw):
        self.curve.measure(model, self.tokenizer, 0)

    def on_step_end(self, args, state, control, model=None, **kw):
        step, rest = divmod(state.global_step, self.updates)
        if rest == 0 and self.curve.due(step):
            self.curve.measure(model, self.tokenizer, step)


def trl(race: Race) -> list[dict]:
    """TRL's GRPOTrainer with our settings (trl_args), reward, AdamW and warm-up, until the clock stops it."""
    from datasets import Dataset
    from trl import GRPOTrainer

    cfg = race_config(race)
    rcfg, seed = cfg.rl_math, stage_seed(cfg, "rl_math")
    model, tok = load_model(race.model_dir)
    dtype = compute_dtype(cfg.model.dtype, model.device)
    rows = pick_tasks(rl_prompts(cfg, "rl_math"), rcfg, TRL_PROMPTS, random.Random(seed))

    def reward(completions: list[str], index: list[int], completion_ids: list[list[int]], **kw) -> list[float]:
        return dapo_rewards([rows[i] for i in index], completions, [len(c) for c in completion_ids], rcfg)[1]

    data = Dataset.from_dict(
        {"prompt": [[{"role": "user", "content": t.question}] for t in rows], "index": list(range(len(rows)))}
    )  # TRL applies the chat template with the generation prompt, as chat_prompt_ids does
    with tempfile.TemporaryDirectory() as tmp:
        curve = TimedCurve(cfg, Path(tmp), race)
        trainer = GRPOTrainer(
            model=model, reward_funcs=reward, args=trl_args(rcfg, tmp, seed, dtype), train_dataset=data,
            processing_class=tok, callbacks=[ClockedEvaluation(curve, tok, updates_per_step(rcfg))],
            optimizers=our_optimizer(model, rcfg),
        )  # fmt: skip
        try:
            trainer.train()
        except TimeUp:
            pass
    return [race_point(p) for p in curve.points]


if __name__ == "__main__":
    contender, race = sys.argv[1], Race.from_json(sys.argv[2])
    print(json.dumps({"ours": ours, "trl": trl}[contender](race)))

"""The curriculum: stages in order, each starting from the previous stage's checkpoint, resumable."""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from pathlib import Path

import torch
from rich.console import Console
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.config import RL_STAGES, STAGES, ConfigError, RunConfig, dump_config, load_config
from mathfirst.data.assemble import rl_prompts, stage_examples, stage_seed
from mathfirst.data.gym import check_gym
from mathfirst.data.loaders import check_model_folder, load_rl_prompts, load_sft_pairs
from mathfirst.eval.curve import LearningCurve
from mathfirst.eval.heldout import evaluate_heldout, print_eval
from mathfirst.eval.report import write_report
from mathfirst.eval.suites import SHIPPED
from mathfirst.model import best_device, build_tiny_model, count_params, load_model, save_model
from mathfirst.plan.plan import plan, refusal
from mathfirst.rl.loop import train_rl
from mathfirst.run_lock import run_lock
from mathfirst.study.skills import analyze_run
from mathfirst.tokenizer import train_tokenizer
from mathfirst.train.checkpoint import DiskFull, disk_full, fsync, write_json_atomic
from mathfirst.train.precision import autocast, compute_dtype
from mathfirst.train.self_distill import self_distilled_pairs
from mathfirst.train.sft import encode_chats, train

console = Console()


def prepare_run_dir(cfg: RunConfig, out: Path, resume: bool) -> RunConfig:
    """Create the run folder, or on --resume check it and return its saved config."""
    saved = out / "config.yaml"
    if resume:
        if not saved.is_file():
            raise ConfigError(f"nothing to resume in {out}: no config.yaml (start it without --resume)")
        saved_cfg = load_config(saved)
        if cfg is not None and saved_cfg != cfg:
            raise ConfigError(f"{out} was started with another config; resume without --config or use a new --out")
        return saved_cfg
    if saved.exists():
        raise ConfigError(f"run folder {out} already holds a run; pass --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    saved.write_text(dump_config(cfg))
    return cfg


def check_inputs(cfg: RunConfig) -> None:
    """Check the starting model and read every data file up front, so bad input fails before the run folder
    is touched."""
    for logger in cfg.log:
        if logger != "jsonl" and importlib.util.find_spec(logger) is None:
            raise ConfigError(f"log: {logger} needs its package: pip install 'mathfirst[log]'")
    unknown = [b for b in cfg.eval.benchmarks if b not in SHIPPED]
    if unknown:
        raise ConfigError(f"eval.benchmarks: {', '.join(unknown)} is not shipped; choose from: {', '.join(SHIPPED)}")
    check_gym(cfg.eval.reasoning_gym)
    check_memory(cfg)  # from the model's config.json alone: a shape that cannot fit is refused first
    if cfg.model.init != "tiny":
        check_model_folder(cfg.model.init, "model.init")
    for stage in cfg.stages:
        scfg = getattr(cfg, stage)
        distill = getattr(scfg, "self_distill", None)
        check_gym(getattr(scfg, "reasoning_gym", None))
        check_gym(distill.reasoning_gym if distill else None)
        for path in scfg.files:
            load_rl_prompts(path) if stage in RL_STAGES else load_sft_pairs(path)


def check_memory(cfg: RunConfig) -> None:
    """Refuse, before any weights load, a stage whose estimated peak does not fit in the memory budget."""
    estimates, budget = plan(cfg)
    for estimate in estimates:
        problem = refusal(estimate, budget)
        if problem:
            raise ConfigError(problem)


def fitted(cfg: RunConfig) -> RunConfig:
    """`cfg` with the sampler's rows (RL rollout_batch_size, eval.batch_size) lowered to what the memory budget
    holds, saying so when it lowers one."""
    estimates, _ = plan(cfg)
    changes: dict = {}
    for e in estimates:
        section = cfg.eval if e.stage == "eval" else getattr(cfg, e.stage)
        key = "batch_size" if e.stage == "eval" else "rollout_batch_size"
        if e.rollout_rows is not None and e.rollout_rows < getattr(section, key):
            console.print(f"{e.stage}: the sampler runs {e.rollout_rows} rows at once, not {getattr(section, key)} "
                          "(their KV cache would not fit; `mathfirst plan` shows the estimate)")  # fmt: skip
            changes[e.stage] = section.model_copy(update={key: e.rollout_rows})
    return cfg.model_copy(update=changes)


def tiny_tokenizer(cfg: RunConfig, out: Path) -> PreTrainedTokenizerBase:
    """Train the tiny world's tokenizer once per run; later calls load it."""
    path = out / "tokenizer"
    if not (path / "tokenizer.json").is_file():
        corpus = [f"{q}\n{s}" for q, s in stage_examples(cfg, "pretrain")]
        train_tokenizer(corpus, cfg.model.vocab_size).save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def initial_model(cfg: RunConfig, out: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if cfg.model.init == "tiny":
        tokenizer = tiny_tokenizer(cfg, out)
        return build_tiny_model(cfg.model, tokenizer, cfg.seed), tokenizer
    return load_model(cfg.model.init)


def starting_point(cfg: RunConfig, out: Path, stage: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The checkpoint of the latest finished stage before `stage`, else the initial model."""
    for earlier in reversed(STAGES[: STAGES.index(stage)]):
        if (out / earlier / "trained.json").is_file():
            return load_model(out / earlier)
    if stage != "pretrain" and cfg.model.init == "tiny":
        raise ConfigError(f"stage {stage} needs a finished earlier stage in {out}; run pretrain first")
    return initial_model(cfg, out)


def run_stage(cfg: RunConfig, out: Path, stage: str) -> dict:
    stage_dir = out / stage
    dtype = compute_dtype(cfg.model.dtype, best_device())
    if not (stage_dir / "trained.json").is_file():
        stage_dir.mkdir(parents=True, exist_ok=True)
        model, tokenizer = starting_point(cfg, out, stage)
        tcfg = getattr(cfg, stage)
        t0 = time.perf_counter()
        if stage in RL_STAGES:
            console.print(f"[bold]{stage}[/]: DAPO on {', '.join(tcfg.domains)}, {count_params(model):,} parameters")
            pools, seed = rl_prompts(cfg, stage), stage_seed(cfg, stage)
            curve_for = (lambda start: LearningCurve(cfg, tcfg, stage_dir, start)) if tcfg.eval_every else None
            model = train_rl(model, tokenizer, tcfg, pools, stage_dir, seed, stage, tuple(cfg.log), dtype, curve_for)
        else:
            pairs = stage_examples(cfg, stage)
            if tcfg.self_distill is not None:
                with autocast(model.device, dtype):
                    pairs += self_distilled_pairs(model, tokenizer, cfg, tcfg.self_distill, stage_dir)
            if not pairs:
                raise ConfigError(f"{stage}: no training rows (set `examples`, `files` or `self_distill`)")
            max_len = cfg.model.max_seq_len
            examples = encode_chats(tokenizer, pairs, tcfg.loss_on_prompt, max_len)
            console.print(f"[bold]{stage}[/]: {len(examples)} examples, {count_params(model):,} parameters")
            model = train(model, tokenizer, examples, tcfg, stage_dir, cfg.seed, stage, tuple(cfg.log), dtype)
        save_stage_model(model, tokenizer, stage_dir, stage)
        write_json_atomic(
            stage_dir / "trained.json", {"steps": tcfg.steps, "seconds": round(time.perf_counter() - t0, 1)}
        )
        shutil.rmtree(stage_dir / "last", ignore_errors=True)
    if not (stage_dir / "eval.json").is_file():
        model, tokenizer = load_model(stage_dir, dtype)
        t0 = time.perf_counter()
        results = evaluate_heldout(model, tokenizer, cfg, stage_dir, stage)
        write_json_atomic(
            stage_dir / "eval.json", {"stage": stage, "domains": results, "seconds": round(time.perf_counter() - t0, 1)}
        )
    if cfg.eval.benchmarks and not (stage_dir / "bench.json").is_file():
        evaluate_stage_benchmarks(cfg, stage_dir)
    results = load_json(stage_dir / "eval.json")["domains"]
    print_eval(stage, results)
    return results


def save_stage_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, stage_dir: Path, stage: str) -> None:
    """The finished stage's model, flushed to the disk before trained.json says it is there; a full disk stops the
    run with one line, the stage's last checkpoint kept for --resume."""
    try:
        save_model(model, tokenizer, stage_dir)
        for path in [*(p for p in stage_dir.iterdir() if p.is_file()), stage_dir]:
            fsync(path)
    except Exception as e:
        if disk_full(e):
            raise DiskFull(
                f"the disk is full: {stage}'s trained model could not be saved in {stage_dir}; its last checkpoint "
                "is intact. Free some space, then run again with --resume"
            ) from None
        raise


def evaluate_stage_benchmarks(cfg: RunConfig, stage_dir: Path) -> None:
    """Greedy accuracy on the configured shipped benchmarks into stage_dir/bench.json (responses cached beside
    it, so a killed eval resumes)."""
    from mathfirst.eval.backends import LocalBackend
    from mathfirst.eval.benchmarks import evaluate_benchmarks, print_results

    ecfg, partial = cfg.eval, stage_dir / "bench.tmp.json"
    backend = LocalBackend(str(stage_dir), ecfg.batch_size)
    report = evaluate_benchmarks(
        backend, ecfg.benchmarks, partial, max_tokens=ecfg.max_new_tokens, limit=ecfg.benchmark_limit, seed=cfg.seed
    )
    print_results(report)
    partial.rename(stage_dir / "bench.json")


def reuse_stages(cfg: RunConfig, out: Path, source: Path) -> list[str]:
    """Copy the finished leading stages of the run in `source` whose settings equal this run's (same seed,
    world, model, eval and stage sections), e.g. the shared pretrain and SFT of an ablation."""
    src_cfg = load_config(source / "config.yaml")
    shared = ("seed", "world", "model", "eval")
    if any(getattr(cfg, k) != getattr(src_cfg, k) for k in shared):
        raise ConfigError(f"--reuse {source}: its seed, world, model or eval settings differ from this run's")
    copied = []
    for stage in cfg.stages:
        done = (source / stage / "trained.json").is_file() and (source / stage / "eval.json").is_file()
        if not done or getattr(cfg, stage) != getattr(src_cfg, stage) or stage not in src_cfg.stages:
            break
        shutil.copytree(source / stage, out / stage)
        copied.append(stage)
    if copied and (source / "tokenizer").is_dir():
        shutil.copytree(source / "tokenizer", out / "tokenizer")
    return copied


def run_curriculum(
    cfg: RunConfig | None, out: Path, resume: bool, stages: list[str] | None = None, reuse: Path | None = None
) -> dict:
    """Run (or resume) the configured stages into `out`; returns held-out results per stage."""
    for s in stages or []:
        if s not in STAGES:
            raise ConfigError(f"unknown stage {s!r}; choose from: {', '.join(STAGES)}")
    if cfg is not None:
        check_inputs(cfg)
    if reuse is not None and (resume or cfg is None):
        raise ConfigError("--reuse starts a new run; it cannot be combined with --resume")
    if reuse is not None and not (reuse / "config.yaml").is_file():
        raise ConfigError(f"--reuse {reuse}: not a run folder (no config.yaml)")
    cfg = prepare_run_dir(cfg, out, resume)
    with run_lock(out):
        return run_stages(cfg, out, stages, reuse)


def run_stages(cfg: RunConfig, out: Path, stages: list[str] | None, reuse: Path | None) -> dict:
    """The stages of a prepared run folder, in order, then its skills analysis and report."""
    for s in stages or []:
        if getattr(cfg, s) is None:
            raise ConfigError(f"stage {s} has no `{s}:` section in the run's config")
    if reuse is not None:
        console.print(f"reused from {reuse}: {', '.join(reuse_stages(cfg, out, reuse)) or 'nothing'}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cfg = fitted(cfg)
    wanted = stages or cfg.stages
    results = {}
    for stage in STAGES:
        if stage not in wanted:
            continue
        if stage == "pretrain" and cfg.model.init != "tiny":
            console.print("pretrain: skipped (it is for the tiny model; this run starts from a pretrained model)")
            continue
        results[stage] = run_stage(cfg, out, stage)
    analyze_run(out)
    md, page = write_report([out])
    console.print(f"report: {page} (and {md.name})")
    return results


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())

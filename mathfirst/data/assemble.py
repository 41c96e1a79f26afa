"""What each stage trains and is evaluated on, assembled once from the config: the native trainer and the
verl export both read their rows from here, so an exported stage sees the prompts a native run would."""

from __future__ import annotations

from mathfirst.config import STAGES, RLConfig, RunConfig
from mathfirst.data.domains import DOMAIN_NAMES
from mathfirst.data.gym import covered_domains, gym_prompts
from mathfirst.data.loaders import DataError, RLPrompt, load_rl_prompts, load_sft_pairs
from mathfirst.data.schema import TINY_SOURCE_PREFIX, Task
from mathfirst.data.traces import TraceStyle
from mathfirst.data.world import generate_tasks, traces
from mathfirst.prompts import user_message

POOL_PER_DOMAIN = 4000  # generated tiny-world training tasks per domain; this bounds set-up time


def stage_seed(cfg: RunConfig, stage: str) -> int:
    """A stage's seed: the RL stage's own `seed` where set, else the run's seed plus the stage's index."""
    own = getattr(getattr(cfg, stage), "seed", None)
    return cfg.seed + STAGES.index(stage) if own is None else own


def tiny_prompt(task: Task, style: str) -> RLPrompt:
    """A tiny-world task as a prompt, its user message in `style`."""
    extra = {k: v for k, v in task.to_row("", 0)["extra_info"].items() if k not in ("split", "index")}
    message = user_message(task.question, task.domain, style)
    return RLPrompt(f"{TINY_SOURCE_PREFIX}{task.domain}", task.domain, message, task.answer, extra)


def task_pools(cfg: RLConfig, levels: tuple[int, ...], seed: int, style: str = "bare") -> dict[str, list[RLPrompt]]:
    """Prompts per domain: reasoning-gym tasks (`reasoning_gym`), generated tiny-world tasks for the domains no
    gym task covers (`generated: true`), plus the rows of `files`."""
    pools: dict[str, list[RLPrompt]] = {d: [] for d in cfg.domains}
    gym_domains = covered_domains(cfg.reasoning_gym)
    for d in cfg.domains:
        if d in gym_domains:
            pools[d] = [styled(p, style) for p in gym_prompts(cfg.reasoning_gym, d, "train", seed)]
        elif cfg.generated:
            pools[d] = [tiny_prompt(t, style) for t in generate_tasks(d, "train", POOL_PER_DOMAIN, seed, levels)]
    for path in cfg.files:
        for p in load_rl_prompts(path):
            if p.domain in pools:
                pools[p.domain].append(p)
    empty = [d for d, pool in pools.items() if not pool]
    if empty:
        raise DataError(
            f"no RL prompts for domain(s) {', '.join(empty)}: enable `generated`, add `reasoning_gym` tasks or `files`"
        )
    return pools


def rl_prompts(cfg: RunConfig, stage: str) -> dict[str, list[RLPrompt]]:
    """The training prompts of an RL stage, per domain."""
    return task_pools(getattr(cfg, stage), tuple(cfg.world.levels), stage_seed(cfg, stage), cfg.model.prompt_style)


def heldout_prompts(cfg: RunConfig, domain: str) -> list[RLPrompt]:
    """The held-out tasks of a domain: the eval's gym tasks where they cover it, else the tiny world's."""
    style = cfg.model.prompt_style
    if domain in covered_domains(cfg.eval.reasoning_gym):
        return [styled(p, style) for p in gym_prompts(cfg.eval.reasoning_gym, domain, "heldout", cfg.seed)]
    tasks = generate_tasks(domain, "heldout", cfg.world.heldout_per_domain, cfg.seed, tuple(cfg.world.levels))
    return [tiny_prompt(t, style) for t in tasks]


def styled(p: RLPrompt, style: str) -> RLPrompt:
    """The same prompt, its user message in `style`."""
    return RLPrompt(p.data_source, p.domain, user_message(p.question, p.domain, style), p.ground_truth, p.extra_info)


def generated_pairs(cfg: RunConfig, domains: list[str], n: int, style: TraceStyle, seed: int) -> list[tuple[str, str]]:
    """`n` (user message, worked solution) pairs of the tiny world, spread evenly over `domains`."""
    pairs = []
    for domain in domains:
        tasks = generate_tasks(domain, "train", -(-n // len(domains)), seed, tuple(cfg.world.levels))
        pairs += [(user_message(q, domain, cfg.model.prompt_style), s) for q, s, _ in traces(tasks, style, seed)]
    return pairs


def stage_examples(cfg: RunConfig, stage: str) -> list[tuple[str, str]]:
    """The rows of a supervised stage: generated traces of its domains, replayed pretraining rows, its data files
    (self-distilled rows, which need the model, are added by the curriculum)."""
    tcfg, w = getattr(cfg, stage), cfg.world
    pretrain_style = TraceStyle(w.pretrain_skill_rate, w.pretrain_slip_rate, w.pretrain_corrected_share)
    style = (
        pretrain_style if stage == "pretrain" else TraceStyle(w.sft_skill_rate, w.sft_slip_rate, w.sft_corrected_share)
    )
    pairs = generated_pairs(cfg, tcfg.domains, tcfg.examples, style, stage_seed(cfg, stage)) if tcfg.examples else []
    if tcfg.replay:  # fresh pretraining-style rows of all pretraining domains, against forgetting
        n_replay = round(len(pairs) * tcfg.replay / (1 - tcfg.replay))
        domains = cfg.pretrain.domains if cfg.pretrain else list(DOMAIN_NAMES)
        pairs += generated_pairs(cfg, domains, n_replay, pretrain_style, cfg.seed + 100)
    for path in tcfg.files:
        pairs += load_sft_pairs(path)
    return pairs

"""Run configuration: pydantic models loaded from YAML presets in configs/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from mathfirst.data.domains import DOMAIN_NAMES
from mathfirst.data.schema import LEVELS
from mathfirst.prompts import STYLES
from mathfirst.rl.loss_registry import DAPO, DUAL_CLIP, KL_ESTIMATORS, LOSS_AGGS, LOSS_NAMES, LOSSES

LOGGERS = ("jsonl", "tensorboard", "wandb")  # where metrics may go (train/metrics.py)
CONCURRENCY = 64  # requests an HTTP client keeps in flight, and rows `mathfirst serve` samples together by default
PRESETS = Path(__file__).parent / "configs"  # shipped with the package; `configs/` in a checkout links here
DEFAULT_CONFIG = PRESETS / "tiny.yaml"
STAGES = ("pretrain", "sft", "rl_math", "rl_joint")
RL_STAGES = ("rl_math", "rl_joint")
SCHEDULES = ("fixed", "learnability", "transfer")  # domain schedules of an RL stage (rl/domain_schedule.py)


class ConfigError(Exception):
    """A user mistake in a config file: printed as one clear line, no traceback."""


def all_domains(value: Any) -> Any:
    """`domains: all` is every domain (DOMAIN_NAMES, the registry in data/domains/); a list stays as it is."""
    return list(DOMAIN_NAMES) if value == "all" else value


DomainList = Annotated[list[Literal[DOMAIN_NAMES]], BeforeValidator(all_domains)]  # type: ignore[valid-type]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorldConfig(Strict):
    levels: list[int] = Field(
        list(LEVELS), description="difficulty levels of the tiny world's tasks (a subset of 1, 2, 3)"
    )
    heldout_per_domain: int = Field(100, gt=0, description="tiny-world held-out tasks per domain")
    pretrain_skill_rate: float = Field(
        0.3, ge=0, le=1, description="chance of the optional skill moves (subgoal, final check) in pretraining traces"
    )
    pretrain_slip_rate: float = Field(0.2, ge=0, le=1, description="share of pretraining traces with a slip")
    pretrain_corrected_share: float = Field(
        0.5, ge=0, le=1, description="share of those slips caught by a check and redone"
    )
    sft_skill_rate: float = Field(
        1.0, ge=0, le=1, description="chance of the optional skill moves in cold-start SFT traces"
    )
    sft_slip_rate: float = Field(0.3, ge=0, le=1, description="share of SFT traces with a slip")
    sft_corrected_share: float = Field(1.0, ge=0, le=1, description="share of those slips caught by a check and redone")

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: list[int]) -> list[int]:
        if not v or any(level not in LEVELS for level in v):
            raise ValueError(f"levels must be a non-empty subset of {list(LEVELS)}")
        return v


class GymTask(Strict):
    """One reasoning-gym task as a data source: its share of its domain's rows and its own options."""

    weight: float = Field(1.0, gt=0, description="rows of a domain are split between its tasks by weight")
    domain: Literal[DOMAIN_NAMES] | None = Field(None, description="default: the task's domain in data/gym.py")  # type: ignore[valid-type]
    config: dict[str, Any] = Field(
        {}, description="the task's own options, e.g. {min_terms: 2, max_terms: 2} for basic_arithmetic"
    )


class GymConfig(Strict):
    """Tasks generated offline by reasoning-gym, scored by its own `score_answer`."""

    tasks: dict[str, GymTask] = Field(description="reasoning-gym task names, each with its weight, domain, options")
    rows_per_domain: int = Field(2000, gt=0, description="RL: training rows; eval: held-out rows per domain")


class LoraConfig(Strict):
    """Low-rank adapters (peft) on the stage's linear layers; the base weights stay frozen."""

    rank: int = Field(16, gt=0, description="adapter rank r")
    alpha: float = Field(32.0, gt=0, description="scale: the update is (alpha / r) B A")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapters' input")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear",
        description="names of the adapted linear layers, e.g. [q_proj, v_proj]; all-linear: every "
        "linear layer but the output head",
    )


class ModelConfig(Strict):
    """Either a fresh tiny Qwen3 (`init: tiny`) or a path to any local HF causal-LM folder."""

    init: str = Field(
        "tiny", description="`tiny` (a fresh tiny Qwen3) or a path to a local Hugging Face causal-LM folder"
    )
    prompts: Literal[STYLES] | None = Field(  # type: ignore[valid-type]
        None,
        description="bare (the question alone) or instruct (with its domain's answer instruction, prompts/task/); "
        "default: bare for the tiny model, instruct for any other",
    )
    vocab_size: int = Field(1024, ge=300, description="tiny model: tokenizer vocabulary")
    hidden_size: int = Field(128, gt=0, description="tiny model: width")
    num_layers: int = Field(3, gt=0, description="tiny model: layers")
    num_heads: int = Field(4, gt=0, description="tiny model: attention heads")
    num_kv_heads: int = Field(2, gt=0, description="tiny model: key/value heads")
    intermediate_size: int = Field(512, gt=0, description="tiny model: MLP width")
    max_seq_len: int = Field(512, gt=0, description="longest prompt + response, in tokens")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="compute precision: auto is bfloat16 on a GPU (autocast over fp32 trainable weights, "
        "frozen ones stored in bf16), float32 on a CPU",
    )

    @property
    def prompt_style(self) -> str:
        return self.prompts or ("bare" if self.init == "tiny" else "instruct")


class SelfDistillConfig(Strict):
    """Rejection-sampled self-distillation: sample `samples` responses per prompt from the starting model, keep
    the verified-correct ones (those that check or backtrack first), and train on them."""

    prompts: int = Field(
        256, gt=0, description="prompts drawn from `reasoning_gym` (or the tiny world's math when absent)"
    )
    samples: int = Field(4, gt=0, description="responses sampled per prompt")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    max_new_tokens: int = Field(256, gt=0, description="longest response")
    per_prompt: int = Field(1, gt=0, description="kept responses per prompt at most")
    reasoning_gym: GymConfig | None = Field(None, description="the gym tasks to draw prompts from")


class TrainConfig(Strict):
    """One supervised stage: pretraining (loss on all tokens) or SFT (loss on the response)."""

    steps: int = Field(gt=0, description="optimizer steps")
    batch_size: int = Field(32, gt=0, description="rows per step")
    micro_batch_size: int | None = Field(
        None, gt=0, description="rows per forward/backward (gradient accumulation); default: the whole batch"
    )
    lr: float = Field(1e-3, gt=0, description="peak learning rate (warm-up, then cosine to 10%)")
    warmup_steps: int = Field(20, ge=0, description="linear warm-up steps")
    weight_decay: float = Field(0.0, ge=0, description="decoupled weight decay")
    optimizer: Literal["adamw", "muon"] = Field(
        "adamw", description="muon: Muon on the hidden matrices, AdamW on the rest"
    )
    adam_betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW betas")
    grad_clip: float = Field(1.0, gt=0, description="max global gradient norm")
    examples: int = Field(ge=0, description="generated rows (0: only `files`)")
    loss_on_prompt: bool = Field(
        False, description="pretraining may also learn the questions; SFT learns responses only"
    )
    replay: float = Field(0.0, ge=0, lt=1, description="share of examples replayed from the pretraining mixture")
    files: list[str] = Field(
        [], description="extra (prompt, response) rows from .jsonl/.parquet files, added to the generated ones"
    )
    self_distill: SelfDistillConfig | None = Field(
        None, description="add the model's own verified responses (rejection sampling)"
    )
    lora: LoraConfig | None = Field(None, description="train low-rank adapters instead of every weight")
    gradient_checkpointing: bool = Field(False, description="recompute each layer's activations in the backward")
    save_every: int = Field(100, gt=0, description="steps between resumable checkpoints")
    log_every: int = Field(10, gt=0, description="steps between metric lines")
    domains: DomainList = Field(
        list(DOMAIN_NAMES), description="the tiny world's domains of the generated rows (or all)"
    )


class RLConfig(Strict):
    """One DAPO stage: math-only RL or joint RL over the domains, sampled by `domain_weights`."""

    steps: int = Field(gt=0, description="DAPO steps (one sampled batch each)")
    prompts_per_step: int = Field(16, gt=0, description="groups per update batch, after dynamic sampling")
    seed: int | None = Field(
        None,
        description="this stage's own seed (its prompt pools, their draw and its sampling); unset: the run's seed "
        "plus the stage's index. Another value repeats the stage from the same checkpoint (`--reuse` keeps the "
        "stages before it), to see how much of one run's result is chance",
    )
    group_size: int = Field(8, ge=2, description="G responses per prompt")
    lr: float = Field(1e-4, gt=0, description="learning rate (linear warm-up, then constant)")
    warmup_steps: int = Field(0, ge=0, description="linear warm-up steps")
    weight_decay: float = Field(0.0, ge=0, description="decoupled weight decay")
    adam_betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW, as verl's actor uses it")
    grad_clip: float = Field(1.0, gt=0, description="max global gradient norm (verl's actor.grad_clip)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature (the log-probs use it too)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling")
    max_new_tokens: int = Field(192, gt=0, description="longest response")
    loss: Literal[LOSS_NAMES] = Field(  # type: ignore[valid-type]
        "dapo",
        description="policy loss (rl/loss_registry.py); it sets clip_low, clip_high, loss_agg, norm_adv_by_std "
        "(and grpo kl_coef, kl_estimator) to its own values unless the stage sets them",
    )
    norm_adv_by_std: bool = Field(True, description="divide group advantages by their std (Dr. GRPO: false)")
    clip_low: float = Field(
        DAPO["clip_low"], ge=0, le=1, description="clip-higher: ratio kept in [1 - clip_low, 1 + clip_high]"
    )
    clip_high: float = Field(DAPO["clip_high"], ge=0, description="upper clip of the ratio (clip-higher)")
    clip_c: float = Field(DUAL_CLIP, gt=1, description="dual clip for negative advantages (verl's clip_ratio_c)")
    loss_agg: Literal[LOSS_AGGS] = Field(  # type: ignore[valid-type]
        DAPO["loss_agg"],
        description="token-mean (DAPO), seq-mean-token-mean (GRPO), seq-mean-token-sum, or seq-mean-token-sum-norm "
        "(Dr. GRPO: token sums / max_new_tokens)",
    )
    overlong_buffer: int = Field(
        0, ge=0, description="soft penalty over the last N tokens before max_new_tokens; 0 = off"
    )
    overlong_penalty: float = Field(1.0, ge=0, description="the penalty at max_new_tokens")
    mask_truncated: bool = Field(False, description="drop responses cut at max_new_tokens from the loss")
    kl_coef: float = Field(0.0, ge=0, description="DAPO uses no KL term")
    kl_estimator: Literal[KL_ESTIMATORS] = Field(  # type: ignore[valid-type]
        "low_var_kl", description=f"{', '.join(KL_ESTIMATORS[:-1])} or {KL_ESTIMATORS[-1]}"
    )
    dynamic_sampling: bool = Field(True, description="drop groups whose accuracies are all equal and sample more")
    prompt_selection: Literal["uniform", "informative"] = Field(
        "uniform",
        description="uniform: every prompt of a domain alike; informative: prefer the prompts whose groups are "
        "likely to be kept (neither all right nor all wrong), from the outcomes of recent groups per prompt and "
        "task kind (rl/prompt_selection.py); domains keep their shares",
    )
    max_gen_rounds: int = Field(3, gt=0, description="sampling rounds per step at most, to fill the batch")
    streaming: bool = Field(
        False,
        description="refill the rows of finished responses with the next groups' (each dropped group replaced at "
        "once) instead of sampling in rounds that each wait for their longest response (sampling/stream.py)",
    )
    mini_batch_groups: int = Field(8, gt=0, description="groups per optimizer step")
    micro_batch_rows: int = Field(8, gt=0, description="responses per forward/backward, packed after their prompt")
    ppo_epochs: int = Field(1, gt=0, description="passes over each batch")
    rollout_batch_size: int = Field(
        128, gt=0, description="rows the sampler runs at once at most (fewer when their KV cache would not fit)"
    )
    lora: LoraConfig | None = Field(None, description="train low-rank adapters instead of every weight")
    gradient_checkpointing: bool = Field(False, description="recompute each layer's activations in the backward")
    save_every: int = Field(10, gt=0, description="steps between resumable checkpoints")
    eval_every: int = Field(
        0,
        ge=0,
        description="steps between held-out evaluations during the stage (a learning curve; also before the first "
        "step and after the last); 0 = only the full evaluation at the stage's end (verl: trainer.test_freq)",
    )
    eval_tasks: int | None = Field(
        None, gt=0, description="held-out tasks per domain in each learning-curve point (the first N); default: all"
    )
    eval_samples: int = Field(
        0, ge=0, description="sampled responses per task in each learning-curve point (mean@k), beside greedy"
    )
    domains: DomainList = Field(["math"], description="the domains prompts are drawn from (or all)")
    generated: bool = Field(
        True, description="draw prompts from the tiny world's generators (for domains no gym task covers)"
    )
    reasoning_gym: GymConfig | None = Field(None, description="and/or from reasoning-gym tasks")
    files: list[str] = Field([], description="and/or from .parquet/.jsonl files in verl's RL schema")
    domain_weights: dict[str, float] = Field({}, description="relative sampling weight per domain; missing = 1")
    schedule: Literal[SCHEDULES] = Field(  # type: ignore[valid-type]
        "fixed",
        description="how each step's domains are drawn (rl/domain_schedule.py): fixed: by domain_weights; "
        "learnability: more of the domains whose recent groups were informative; transfer: learnability times the "
        "domain's gradient alignment with the other domains; every domain keeps a floor share",
    )

    @model_validator(mode="after")
    def _loss_defaults(self) -> RLConfig:
        """The settings the chosen loss defines, where the stage does not set them (left out of the fields
        set, so an overlay that changes `loss` gets the new loss's values)."""
        for key, value in LOSSES[self.loss].defaults.items():
            if key not in self.model_fields_set:
                object.__setattr__(self, key, value)
        return self

    @field_validator("domain_weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        for domain, w in v.items():
            if domain not in DOMAIN_NAMES:
                raise ValueError(f"unknown domain {domain!r}; choose from: {', '.join(DOMAIN_NAMES)}")
            if w < 0:
                raise ValueError(f"weight of {domain} must be >= 0")
        return v


class EvalConfig(Strict):
    samples: int = Field(2, ge=0, description="k sampled responses per task for mean@k (0: greedy only)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of mean@k")
    max_new_tokens: int = Field(160, gt=0, description="longest response")
    batch_size: int = Field(400, gt=0, description="rows the sampler runs at once")
    domains: DomainList = Field(list(DOMAIN_NAMES), description="held-out domains evaluated after every stage (or all)")
    reasoning_gym: GymConfig | None = Field(
        None, description="held-out gym tasks replace the tiny world's in the domains they cover"
    )
    benchmarks: list[str] = Field(
        [], description="shipped benchmarks evaluated after every stage, e.g. [gsm8k, math500]"
    )
    benchmark_limit: int | None = Field(None, gt=0, description="the first N problems of each")


class ServeSettings(Strict):
    """The server's limits; `mathfirst serve --help` shows them as options."""

    max_tokens: int | None = Field(None, gt=0, description="cap on a request's max_tokens (default: the context)")
    memory_gb: float | None = Field(
        None, gt=0, description="memory for the sampler's batches (default: half of what is free at start)"
    )
    max_batch: int = Field(CONCURRENCY, gt=0, description="rows (requests x n) sampled together at most")
    max_queue: int = Field(16 * CONCURRENCY, gt=0, description="rows waiting at most; more get 429")
    window_s: float = Field(0.005, ge=0, description="how long the first request waits for others to join")
    request_timeout_s: float = Field(600.0, gt=0, description="a request waiting longer gets 504")
    api_key: str | None = Field(None, description="required as 'Authorization: Bearer KEY' (env MATHFIRST_API_KEY)")


class RunConfig(Strict):
    name: str = Field("run", description="the run's name (reports, verl experiment names)")
    seed: int = Field(0, description="the run's seed")
    stages: list[Literal[STAGES]] = Field(list(STAGES), description="stages to run, in order")  # type: ignore[valid-type]
    threads: int = Field(0, ge=0, description="torch threads; 0 = all cores")
    memory_gb: float | None = Field(
        None, gt=0, description="memory a stage may use; default: the GPU's memory, or the RAM available on a CPU"
    )
    log: list[Literal[LOGGERS]] = Field(  # type: ignore[valid-type]
        ["jsonl"], description="where metrics go: jsonl (metrics.jsonl, always written), tensorboard, wandb"
    )
    world: WorldConfig = Field(WorldConfig(), description="the tiny world")
    model: ModelConfig = Field(ModelConfig(), description="the starting model")
    pretrain: TrainConfig | None = Field(None, description="tiny-world pretraining (the tiny model only)")
    sft: TrainConfig | None = Field(None, description="cold-start SFT")
    rl_math: RLConfig | None = Field(None, description="math-only DAPO")
    rl_joint: RLConfig | None = Field(None, description="joint DAPO over the domains")
    eval: EvalConfig = Field(EvalConfig(), description="evaluation after every stage")

    @model_validator(mode="after")
    def _stages_have_settings(self) -> RunConfig:
        for stage in self.stages:
            if getattr(self, stage) is None:
                raise ValueError(f"stage {stage} is listed in `stages` but has no `{stage}:` section")
        return self


def load_config(path: str | Path, changes: dict | None = None) -> RunConfig:
    """Load and validate a YAML config, with `changes` overlaid as an overlay file's keys would be; raise
    ConfigError with one readable line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    if "base" in data:  # an overlay: the base config's keys, then this file's
        base = path.parent / str(data.pop("base"))
        data = overlay(load_config(base).model_dump(mode="json", exclude_unset=True), data)
    data = overlay(data, changes or {})
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(_problem(err) for err in e.errors())
        raise ConfigError(f"{path}: {problems}") from None


def overlay(base: dict, changes: dict) -> dict:
    """`base` with `changes` merged in, mapping by mapping; any other value (a list too) is replaced."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = overlay(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _problem(err: dict) -> str:
    where = ".".join(map(str, err["loc"]))
    return f"key `{where}`: {_reason(err)}" if where else _reason(err).removeprefix("Value error, ")


def _reason(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    return err["msg"]


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)

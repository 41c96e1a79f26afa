"""`mathfirst export verl`: the curriculum's stages as verl jobs. Per stage: train/val parquet in verl's
schema, Hydra overrides for verl's own trainer configs (every value tagged paper / recipe / config), and one
`launch.sh` that runs the stages in order, each from the previous stage's merged Hugging Face checkpoint.

verl runs the distributed training (FSDP + vLLM on Ray); mathfirst supplies the data, the reward
(`mathfirst.rewards.compute_score` through `reward.py`), the stage settings and the chaining."""

from __future__ import annotations

import random
import shlex
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mathfirst.config import ConfigError, LoraConfig, RLConfig, RunConfig, TrainConfig
from mathfirst.data.assemble import heldout_prompts, rl_prompts, stage_examples
from mathfirst.data.domains import DOMAINS
from mathfirst.data.loaders import RLPrompt
from mathfirst.eval.curve import spread
from mathfirst.rl.loss_registry import LOSSES

TEMPLATES = Path(__file__).parent.parent / "templates" / "verl"  # reward.py and launch.sh, written into the export
EXPORTED_STAGES = ("sft", "rl_math", "rl_joint")
ENTRY = {"sft": "verl.trainer.sft_trainer", "rl_math": "verl.trainer.main_ppo", "rl_joint": "verl.trainer.main_ppo"}
MODEL_KEY = {"sft": "model.path", "rl_math": "actor_rollout_ref.model.path", "rl_joint": "actor_rollout_ref.model.path"}
# What the method prescribes (Pang et al.: DAPO with clip-higher, dynamic sampling, token-level loss,
# overlong shaping); every other value comes from verl's DAPO recipe via the config's stage settings.
PAPER_KEYS = {
    "algorithm.adv_estimator",
    "actor_rollout_ref.actor.clip_ratio_low",
    "actor_rollout_ref.actor.clip_ratio_high",
    "actor_rollout_ref.actor.loss_agg_mode",
    "actor_rollout_ref.actor.policy_loss.loss_mode",
    "algorithm.filter_groups.enable",
    "+reward.reward_kwargs.overlong_buffer_cfg.enable",
    "reward.reward_manager.name",
    "reward.custom_reward_function.path",
    "reward.custom_reward_function.name",
}
LAYOUT_KEYS = {
    "data.train_files",
    "data.val_files",
    "data.prompt_key",
    "data.messages_key",
    "data.seed",
    "trainer.project_name",
    "trainer.experiment_name",
    "trainer.default_local_dir",
    "trainer.logger",
    "trainer.resume_mode",
}


def hydra_value(value: object) -> str:
    """A value as Hydra's override grammar reads it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, str) and any(c in value for c in " ,[]{}=:'\""):
        return "'" + value.replace("'", "\\'") + "'"
    return str(value)


def refuse_native_only(rl: RLConfig, stage: str) -> None:
    """Stop with one line on settings verl cannot express, rather than export something else silently."""
    if rl.prompt_selection != "uniform":
        raise ConfigError(
            f"{stage}.prompt_selection: {rl.prompt_selection} is native-only (verl's dataloader draws its prompts "
            "in a shuffled order, without the outcomes of earlier groups): set it to uniform to export"
        )
    if rl.schedule != "fixed":
        raise ConfigError(
            f"{stage}.schedule: {rl.schedule} is native-only (verl samples its dataset in a fixed shuffled order; "
            "it has no per-dataset weights or curriculum sampler to drive): set it to fixed to export"
        )
    if rl.streaming:
        raise ConfigError(
            f"{stage}.streaming is native-only (verl's dynamic sampling generates whole batches, each waiting for "
            "its last response, and has no way to replace a dropped group at once): set it to false to export"
        )


def rl_overrides(cfg: RunConfig, rl: RLConfig, stage: str, folder: Path, reward: Path) -> dict[str, object]:
    """verl `main_ppo` overrides (ppo_trainer.yaml) for one DAPO stage."""
    refuse_native_only(rl, stage)
    return {
        **rl_data_overrides(cfg, rl, folder),
        **algorithm_overrides(rl),
        **rollout_overrides(rl),
        **actor_update_overrides(rl),
        **actor_loss_overrides(rl),
        **lora_overrides("actor_rollout_ref.model", rl.lora),
        "actor_rollout_ref.model.enable_gradient_checkpointing": rl.gradient_checkpointing,
        **reward_overrides(rl, reward),
        **rl_trainer_overrides(cfg, rl, stage, folder),
    }


def rl_data_overrides(cfg: RunConfig, rl: RLConfig, folder: Path) -> dict[str, object]:
    """The stage's parquet files, prompt and response lengths, prompts per step and the shuffling seed."""
    return {
        "data.train_files": [str(folder / "train.parquet")],
        "data.val_files": [str(folder / "val.parquet")],
        "data.prompt_key": "prompt",
        "data.max_prompt_length": max(256, cfg.model.max_seq_len - rl.max_new_tokens),
        "data.max_response_length": rl.max_new_tokens,
        "data.train_batch_size": rl.prompts_per_step,
        "data.gen_batch_size": rl.prompts_per_step,
        "data.seed": cfg.seed if rl.seed is None else rl.seed,
    }


def algorithm_overrides(rl: RLConfig) -> dict[str, object]:
    """Group advantages (GRPO's estimator) and DAPO's dynamic sampling."""
    return {
        "algorithm.adv_estimator": "grpo",
        "algorithm.norm_adv_by_std_in_grpo": rl.norm_adv_by_std,
        "algorithm.use_kl_in_reward": False,
        "algorithm.filter_groups.enable": rl.dynamic_sampling,
        "algorithm.filter_groups.metric": "acc",
        "algorithm.filter_groups.max_num_gen_batches": rl.max_gen_rounds,
    }


def rollout_overrides(rl: RLConfig) -> dict[str, object]:
    """How vLLM samples each group."""
    return {
        "actor_rollout_ref.rollout.name": "vllm",
        "actor_rollout_ref.rollout.n": rl.group_size,
        "actor_rollout_ref.rollout.temperature": rl.temperature,
        "actor_rollout_ref.rollout.top_p": rl.top_p,
    }


def actor_update_overrides(rl: RLConfig) -> dict[str, object]:
    """The actor's optimizer, its mini-batches and epochs, and the micro-batches of its update and log-probs."""
    return {
        "actor_rollout_ref.actor.optim.lr": rl.lr,
        "actor_rollout_ref.actor.optim.lr_warmup_steps": rl.warmup_steps,
        "actor_rollout_ref.actor.optim.weight_decay": rl.weight_decay,
        "actor_rollout_ref.actor.optim.betas": list(rl.adam_betas),
        "actor_rollout_ref.actor.grad_clip": rl.grad_clip,
        "actor_rollout_ref.actor.ppo_mini_batch_size": rl.mini_batch_groups,
        "actor_rollout_ref.actor.ppo_epochs": rl.ppo_epochs,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": rl.micro_batch_rows,
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": rl.micro_batch_rows,
    }


def actor_loss_overrides(rl: RLConfig) -> dict[str, object]:
    """The policy loss: its clip range, aggregation and verl loss mode, and the KL term (off at kl_coef 0)."""
    return {
        "actor_rollout_ref.actor.clip_ratio_low": rl.clip_low,
        "actor_rollout_ref.actor.clip_ratio_high": rl.clip_high,
        "actor_rollout_ref.actor.clip_ratio_c": rl.clip_c,
        "actor_rollout_ref.actor.loss_agg_mode": rl.loss_agg,
        "actor_rollout_ref.actor.policy_loss.loss_mode": LOSSES[rl.loss].verl_mode,
        "actor_rollout_ref.actor.loss_scale_factor": rl.max_new_tokens,  # seq-mean-token-sum-norm's horizon
        "actor_rollout_ref.actor.use_kl_loss": rl.kl_coef > 0,
        "actor_rollout_ref.actor.kl_loss_coef": rl.kl_coef,
        "actor_rollout_ref.actor.kl_loss_type": rl.kl_estimator,
        "actor_rollout_ref.actor.entropy_coeff": 0,
    }


def reward_overrides(rl: RLConfig, reward: Path) -> dict[str, object]:
    """verl's DAPO reward manager calling our reward.py, with the overlong shaping."""
    return {
        "reward.reward_manager.name": "dapo",
        "reward.custom_reward_function.path": str(reward),
        "reward.custom_reward_function.name": "compute_score",
        "+reward.reward_kwargs.overlong_buffer_cfg.enable": rl.overlong_buffer > 0,
        "+reward.reward_kwargs.overlong_buffer_cfg.len": rl.overlong_buffer,
        "+reward.reward_kwargs.overlong_buffer_cfg.penalty_factor": rl.overlong_penalty,
        "+reward.reward_kwargs.overlong_buffer_cfg.log": True,
        "+reward.reward_kwargs.max_resp_len": rl.max_new_tokens,
    }


def rl_trainer_overrides(cfg: RunConfig, rl: RLConfig, stage: str, folder: Path) -> dict[str, object]:
    """Names, checkpoints, steps, validation and resumption of one RL stage."""
    return {
        "trainer.project_name": "mathfirst",
        "trainer.experiment_name": f"{cfg.name}-{stage}",
        "trainer.default_local_dir": str(folder / "checkpoints"),
        "trainer.total_training_steps": rl.steps,
        "trainer.save_freq": rl.save_every,
        "trainer.test_freq": rl.eval_every or rl.steps,  # a learning curve, or one validation at the end
        "trainer.val_before_train": rl.eval_every > 0,
        "trainer.resume_mode": "auto",
        "trainer.logger": ["console"],
    }


def lora_overrides(prefix: str, lora: LoraConfig | None) -> dict[str, object]:
    """verl's LoRA keys (rank 0: off)."""
    if lora is None:
        return {f"{prefix}.lora_rank": 0}
    targets = lora.target_modules if isinstance(lora.target_modules, str) else list(lora.target_modules)
    return {f"{prefix}.lora_rank": lora.rank, f"{prefix}.lora_alpha": lora.alpha, f"{prefix}.target_modules": targets}


def sft_overrides(cfg: RunConfig, sft: TrainConfig, folder: Path) -> dict[str, object]:
    """verl `sft_trainer` overrides (sft_trainer_engine.yaml) for the cold start."""
    if sft.self_distill is not None:
        raise ConfigError(
            "sft.self_distill samples from the model, which an export cannot do: run the SFT stage natively "
            "(`mathfirst run --stages sft`) and export from its checkpoint without sft, or drop self_distill"
        )
    if sft.optimizer != "adamw":
        raise ConfigError(
            f"sft.optimizer: {sft.optimizer} has no verl counterpart (verl builds one torch optimizer over all "
            "parameters; Muon takes 2-D matrices only): set sft.optimizer: adamw to export"
        )
    return {
        "data.train_files": str(folder / "train.parquet"),
        "data.val_files": str(folder / "val.parquet"),
        "data.messages_key": "messages",
        "data.train_batch_size": sft.batch_size,
        "data.max_length": cfg.model.max_seq_len,
        "data.truncation": "right",
        "optim.optimizer": "AdamW",
        "optim.lr": sft.lr,
        "optim.weight_decay": sft.weight_decay,
        "optim.betas": list(sft.adam_betas),
        "optim.clip_grad": sft.grad_clip,
        "optim.lr_warmup_steps": sft.warmup_steps,
        **lora_overrides("model", sft.lora),
        "model.enable_gradient_checkpointing": sft.gradient_checkpointing,
        "trainer.project_name": "mathfirst",
        "trainer.experiment_name": f"{cfg.name}-sft",
        "trainer.default_local_dir": str(folder / "checkpoints"),
        "trainer.total_training_steps": sft.steps,
        "trainer.save_freq": sft.save_every,
        "trainer.seed": cfg.seed,
        "trainer.resume_mode": "auto",
        "trainer.logger": ["console"],
    }


def source_of(key: str, stage: str) -> str:
    """paper: the method itself; recipe: a DAPO-recipe setting (valued from the config's stage section);
    config: a cold-start setting from the config; layout: where this export put things."""
    if key in PAPER_KEYS:
        return "paper"
    if key in LAYOUT_KEYS:
        return "layout"
    return "config" if stage == "sft" else "recipe"


def prompt_row(p: RLPrompt, split: str, index: int) -> dict:
    """One prompt as a row of verl's RL schema; `compute_score` routes it by its data source and ability."""
    style = "rule" if p.data_source.startswith("reasoning_gym/") else DOMAINS[p.domain].reward_style
    return {
        "data_source": p.data_source,
        "prompt": [{"role": "user", "content": p.question}],
        "ability": p.domain,
        "reward_model": {"style": style, "ground_truth": p.ground_truth},
        "extra_info": {"split": split, "index": index, **p.extra_info},
    }


def rl_rows(cfg: RunConfig, stage: str) -> tuple[list[dict], list[dict]]:
    """Train rows of a DAPO stage (the prompts the native trainer draws from) and val rows (the held-out
    tasks its learning curve measures: every evaluated domain, `eval_tasks` each)."""
    rl = getattr(cfg, stage)
    train = [prompt_row(p, "train", i) for pool in rl_prompts(cfg, stage).values() for i, p in enumerate(pool)]
    held = [p for d in cfg.eval.domains for p in spread(heldout_prompts(cfg, d), rl.eval_tasks)]
    return train, [prompt_row(p, "heldout", i) for i, p in enumerate(held)] or train[:100]


def sft_rows(cfg: RunConfig) -> tuple[list[dict], list[dict]]:
    pairs = stage_examples(cfg, "sft")
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in pairs]
    random.Random(cfg.seed).shuffle(rows)
    cut = max(1, min(200, len(rows) // 20))
    return rows[cut:], rows[:cut]


def write_parquet(rows: list[dict], path: Path) -> None:
    pq.write_table(pa.Table.from_pylist(rows), path)


def write_overrides(folder: Path, stage: str, overrides: dict[str, object]) -> None:
    """overrides.txt (what launch.sh passes to verl) and config.yaml (the same values, each with its source)."""
    lines = [f"{k}={hydra_value(v)}" for k, v in overrides.items()]
    (folder / "overrides.txt").write_text("\n".join(lines) + "\n")
    yaml_lines = [f"# verl {ENTRY[stage]} overrides for stage {stage}. (paper) the method; (recipe) a setting of"]
    yaml_lines.append("# verl's DAPO recipe, valued from this config; (config) the config's own; (layout) this export.")
    yaml_lines += [f"{k}: {hydra_value(v)}  # ({source_of(k, stage)})" for k, v in overrides.items()]
    (folder / "config.yaml").write_text("\n".join(yaml_lines) + "\n")


def export_verl(cfg: RunConfig, out: Path) -> dict[str, Path]:
    """Write every exported stage of `cfg` under `out`; returns the stage folders."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    reward = out / "reward.py"
    reward.write_text((TEMPLATES / "reward.py").read_text())
    folders = {}
    for stage in [s for s in cfg.stages if s in EXPORTED_STAGES]:
        folder = out / stage
        folder.mkdir(exist_ok=True)
        if stage == "sft":
            train, val = sft_rows(cfg)
            overrides = sft_overrides(cfg, cfg.sft, folder)
        else:
            train, val = rl_rows(cfg, stage)
            overrides = rl_overrides(cfg, getattr(cfg, stage), stage, folder, reward)
        write_parquet(train, folder / "train.parquet")
        write_parquet(val, folder / "val.parquet")
        write_overrides(folder, stage, overrides)
        folders[stage] = folder
    calls = "\n".join(f"run_stage {s} {ENTRY[s]} {MODEL_KEY[s]}" for s in folders)
    model = cfg.model.init if cfg.model.init != "tiny" else "<a Hugging Face model folder>"
    launch = (TEMPLATES / "launch.sh").read_text()
    launch = launch.replace("@MODEL@", shlex.quote(model).strip("'")).replace("@STAGES@", calls)
    (out / "launch.sh").write_text(launch)
    (out / "launch.sh").chmod(0o755)
    return folders

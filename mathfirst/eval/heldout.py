"""Held-out accuracy per domain (tiny-world or reasoning-gym tasks): greedy and mean over k samples."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.config import RunConfig
from mathfirst.data.assemble import heldout_prompts
from mathfirst.data.loaders import RLPrompt
from mathfirst.data.traces import detect_skills
from mathfirst.eval.stats import bootstrap_interval, wilson
from mathfirst.rewards import in_answer_format
from mathfirst.sampling.scored import sample_scored


def evaluate_heldout(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cfg: RunConfig, stage_dir: Path, stage: str
) -> dict:
    """Evaluate every configured domain; write eval.json and samples.jsonl into stage_dir."""
    ecfg = cfg.eval
    results: dict[str, dict] = {}
    samples_out = []
    for domain in ecfg.domains:
        gen = Generation(ecfg.max_new_tokens, ecfg.batch_size, cfg.seed, ecfg.samples, ecfg.temperature)
        results[domain], records = score_domain(model, tokenizer, heldout_prompts(cfg, domain), domain, gen, stage)
        samples_out += [{"stage": stage, **r} for r in records]
    with (stage_dir / "samples.jsonl").open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in samples_out)
    return results


@dataclass(frozen=True)
class Generation:
    """How held-out responses are sampled: greedy, plus `samples` at `temperature` for mean@k."""

    max_new_tokens: int
    batch_size: int
    seed: int
    samples: int = 0
    temperature: float = 1.0


def score_domain(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    tasks: list[RLPrompt],
    domain: str,
    gen: Generation,
    desc: str,
) -> tuple[dict, list[dict]]:
    """Greedy (and mean@k) accuracy of one domain's tasks with 95% intervals, the share of greedy responses in
    the verifier's answer format and the accuracy among those; and one record per response."""
    run = dict(max_new_tokens=gen.max_new_tokens, batch_size=gen.batch_size, seed=gen.seed)
    greedy = sample_scored(model, tokenizer, tasks, 1, temperature=0.0, desc=f"{desc}/{domain}", **run)
    k = gen.samples
    sampled = sample_scored(
        model, tokenizer, tasks, k, temperature=gen.temperature, desc=f"{desc}/{domain} k={k}", **run
    )
    owners, scores = [], []  # each task's greedy response, then its samples (as paired.task_scores reads them)
    for i, t in enumerate(tasks):
        owners += [(t, "greedy", greedy.texts[i])] + [(t, "sample", x) for x in sampled.texts[i * k : (i + 1) * k]]
        scores += [greedy.results[i], *sampled.results[i * k : (i + 1) * k]]
    greedy_scores = greedy.results
    sample_acc = sampled.scores
    per_task = [sum(sample_acc[i * k : (i + 1) * k]) / k for i in range(len(tasks))] if k else []
    greedy_acc = [sc["score"] for sc in greedy_scores]
    formatted = [sc["score"] for sc in greedy_scores if in_answer_format(sc)]
    result = {
        "n": len(tasks),
        "greedy": round(sum(greedy_acc) / len(greedy_acc), 4),
        "greedy_ci95": [round(x, 4) for x in wilson(int(sum(greedy_acc)), len(greedy_acc))],
        f"mean@{k}": round(sum(sample_acc) / len(sample_acc), 4) if sample_acc else None,
        f"mean@{k}_ci95": [round(x, 4) for x in bootstrap_interval(per_task)] if per_task else None,
        "chance": round(sum(t.extra_info.get("chance", 0.0) for t in tasks) / len(tasks), 4),
        "format": round(len(formatted) / len(greedy_acc), 4),
        "acc_in_format": round(sum(formatted) / len(formatted), 4) if formatted else None,
        "acc_in_format_ci95": [round(x, 4) for x in wilson(int(sum(formatted)), len(formatted))] if formatted else None,
    }
    records = [
        {
            "domain": domain,
            "kind": kind,
            "level": t.extra_info.get("level"),
            "task_kind": t.extra_info.get("kind"),
            "question": t.question,
            "answer": t.extra_info.get("answer", t.ground_truth),
            "response": text,
            "score": sc["score"],
            "pred": sc.get("pred"),
            "in_format": in_answer_format(sc),
            "skills": detect_skills(text),
        }
        for sc, (t, kind, text) in zip(scores, owners)
    ]
    return result, records


def print_eval(stage: str, results: dict) -> None:
    table = Table(title=f"held-out accuracy after {stage} (95% intervals)")
    table.add_column("domain")
    keys = [k for k in next(iter(results.values())) if k != "n" and not k.endswith("_ci95")]
    for k in keys:
        table.add_column(k, justify="right")
    table.add_column("n", justify="right")
    for domain, r in results.items():
        cells = []
        for k in keys:
            ci = r.get(f"{k}_ci95")
            value = "-" if r[k] is None else f"{r[k]:.1%}"
            cells.append(value + (f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else ""))
        table.add_row(domain, *cells, str(r["n"]))
    Console().print(table)

"""Held-out accuracy per domain (tiny-world or reasoning-gym tasks): greedy and mean over k samples."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mathfirst.config import RunConfig
from mathfirst.data.assemble import heldout_prompts
from mathfirst.data.reasoning import detect_skills
from mathfirst.eval.stats import bootstrap_interval, wilson
from mathfirst.rewards import compute_scores
from mathfirst.rollout import decode, sample
from mathfirst.tokenizer import chat_prompt_ids


def evaluate_heldout(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cfg: RunConfig, stage_dir: Path, stage: str
) -> dict:
    """Evaluate every configured domain; write eval.json and samples.jsonl into stage_dir."""
    ecfg = cfg.eval
    results: dict[str, dict] = {}
    samples_out = []
    for domain in ecfg.domains:
        tasks = heldout_prompts(cfg, domain)
        prompts = [chat_prompt_ids(tokenizer, t.question) for t in tasks]
        gen = dict(max_new_tokens=ecfg.max_new_tokens, batch_size=ecfg.batch_size, seed=cfg.seed)
        greedy = decode(tokenizer, sample(model, tokenizer, prompts, temperature=0.0, desc=f"{stage}/{domain}", **gen))
        k = ecfg.samples
        repeated = [p for p in prompts for _ in range(k)]
        desc = f"{stage}/{domain} k={k}"
        texts = decode(tokenizer, sample(model, tokenizer, repeated, temperature=ecfg.temperature, desc=desc, **gen))
        items, owners = [], []
        for i, t in enumerate(tasks):
            for j, text in enumerate([greedy[i], *texts[i * k : (i + 1) * k]]):
                items.append((t.data_source, text, t.ground_truth, {**t.extra_info, "ability": domain}))
                owners.append((t, "greedy" if j == 0 else "sample", text))
        scores = compute_scores(items)
        greedy_acc = [sc["score"] for sc, (_, kind, _) in zip(scores, owners) if kind == "greedy"]
        sample_acc = [sc["score"] for sc, (_, kind, _) in zip(scores, owners) if kind == "sample"]
        per_task = [sum(sample_acc[i * k : (i + 1) * k]) / k for i in range(len(tasks))] if k else []
        results[domain] = {
            "n": len(tasks),
            "greedy": round(sum(greedy_acc) / len(greedy_acc), 4),
            "greedy_ci95": [round(x, 4) for x in wilson(int(sum(greedy_acc)), len(greedy_acc))],
            f"mean@{k}": round(sum(sample_acc) / len(sample_acc), 4) if sample_acc else None,
            f"mean@{k}_ci95": [round(x, 4) for x in bootstrap_interval(per_task)] if per_task else None,
            "chance": round(sum(t.extra_info.get("chance", 0.0) for t in tasks) / len(tasks), 4),
        }
        for sc, (t, kind, text) in zip(scores, owners):
            samples_out.append(
                {
                    "stage": stage,
                    "domain": domain,
                    "kind": kind,
                    "level": t.extra_info.get("level"),
                    "task_kind": t.extra_info.get("kind"),
                    "question": t.question,
                    "answer": t.extra_info.get("answer", t.ground_truth),
                    "response": text,
                    "score": sc["score"],
                    "pred": sc.get("pred"),
                    "skills": detect_skills(text),
                }
            )
    with (stage_dir / "samples.jsonl").open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in samples_out)
    return results


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

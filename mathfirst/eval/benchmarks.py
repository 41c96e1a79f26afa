"""`mathfirst eval`: real benchmarks through any backend, with pass@k, avg@k, 95% intervals and a response
cache (`<out>.responses.jsonl`) that lets an interrupted eval resume where it stopped."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from mathfirst.eval.backends import Backend
from mathfirst.eval.stats import interval, pass_at_k
from mathfirst.eval.suites import BenchItem, load_benchmark
from mathfirst.prompts import HERE as PROMPTS
from mathfirst.rewards import compute_scores
from mathfirst.rewards.code import last_code_block

TEMPLATES = PROMPTS / "benchmark"


def load_template(name: str, template_dir: Path | None) -> str:
    """A benchmark prompt template; a same-named file in `template_dir` overrides the shipped one."""
    for folder in (template_dir, TEMPLATES):
        if folder is not None and (folder / f"{name}.txt").is_file():
            return (folder / f"{name}.txt").read_text()
    raise FileNotFoundError(f"no prompt template {name}.txt in {template_dir or TEMPLATES}")


def render(template: str, item: BenchItem) -> str:
    return template.replace("{question}", item.question).rstrip("\n")


def read_cache(path: Path, settings: str) -> dict[tuple[str, str, int], dict]:
    """Cached responses made with the same settings, by (benchmark, item id, sample index)."""
    cache = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
            if row.get("settings") == settings:
                cache[(row["benchmark"], row["id"], row["sample"])] = row
    return cache


def summarize(rows: list[dict], samples: int) -> dict:
    """Accuracy (avg@k), pass@k for k = 1, 2, 4, ... up to the samples, and the 95% interval."""
    by_item: dict[str, list[float]] = {}
    for r in rows:
        by_item.setdefault(r["id"], []).append(r["score"])
    per_item = [sum(s) / len(s) for s in by_item.values()]
    out = {"n": len(by_item), "samples": samples, "accuracy": sum(per_item) / len(per_item)}
    out["ci95"] = list(interval(per_item, samples))
    ks = sorted({k for k in (1, 2, 4, 8, 16, 32, 64, 128, samples) if k <= samples})
    for k in ks:
        out[f"pass@{k}"] = float(np.mean([pass_at_k(len(s), int(sum(s)), k) for s in by_item.values()]))
    out[f"avg@{samples}"] = out["accuracy"]
    return out


def evaluate_benchmarks(
    backend: Backend,
    names: list[str],
    out: Path,
    samples: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_tokens: int = 1024,
    limit: int | None = None,
    data: dict[str, Path] | None = None,
    template_dir: Path | None = None,
    chunk: int = 64,
    seed: int = 0,
) -> dict:
    """Evaluate `names` through `backend`; write `out` (JSON) and `<out>.responses.jsonl` (one row per response)."""
    data = data or {}
    suites = {name: load_benchmark(name, data.get(name), limit) for name in names}  # fail early on bad files
    templates = {t: load_template(t, template_dir) for items in suites.values() for t in {i.template for i in items}}
    settings = hashlib.sha256(
        json.dumps([backend.name, samples, temperature, top_p, max_tokens, seed, templates], sort_keys=True).encode()
    ).hexdigest()[:16]
    responses = out.with_suffix(".responses.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    cache = read_cache(responses, settings)
    results = {}
    with responses.open("a") as sink:
        for name, items in suites.items():
            done = [i for i in items if all((name, i.id, s) in cache for s in range(samples))]
            rows = [cache[(name, i.id, s)] for i in done for s in range(samples)]
            todo = [i for i in items if i not in done]
            bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=name, dynamic_ncols=True)
            for start in range(0, len(todo), chunk):
                part = todo[start : start + chunk]
                prompts = [render(templates[i.template], i) for i in part]
                texts = backend.complete(prompts, samples, temperature, top_p, max_tokens, seed + start)
                new = score(name, part, texts, settings)
                sink.writelines(json.dumps(r) + "\n" for r in new)
                sink.flush()
                rows += new
                bar.update(len(part))
            bar.close()
            results[name] = summarize(rows, samples)
    report = {
        "model": backend.name,
        "settings": {"samples": samples, "temperature": temperature, "top_p": top_p, "max_tokens": max_tokens},
        "benchmarks": results,
    }
    out.write_text(json.dumps(report, indent=2))
    return report


def score(name: str, items: list[BenchItem], texts: list[list[str]], settings: str) -> list[dict]:
    """Verify every response; HumanEval rows also carry `task_id` and `completion` for its own harness."""
    flat = [(item, s, text) for item, group in zip(items, texts) for s, text in enumerate(group)]
    scores = compute_scores([(i.data_source, text, i.ground_truth, i.extra_info) for i, _, text in flat])
    rows = []
    for (item, s, text), sc in zip(flat, scores):
        row = {"benchmark": name, "id": item.id, "sample": s, "settings": settings, "response": text}
        row |= {
            "score": sc["score"],
            "pred": str(sc.get("pred")),
            "verifier": sc["verifier"],
            "reason": sc.get("reason", ""),
        }
        if name == "humaneval":
            row |= {"task_id": item.id, "completion": "\n" + last_code_block(text)}
        rows.append(row)
    return rows


def print_results(report: dict) -> None:
    samples = report["settings"]["samples"]
    table = Table(title=f"{report['model']}  (samples={samples}, T={report['settings']['temperature']})")
    ks = [1, samples] if samples > 1 else [1]
    for column in ("benchmark", "n", "accuracy", "95% CI", *[f"pass@{k}" for k in ks]):
        table.add_column(column, justify="left" if column == "benchmark" else "right")
    for name, r in report["benchmarks"].items():
        lo, hi = r["ci95"]
        passes = [f"{r[f'pass@{k}']:.1%}" for k in ks]
        table.add_row(name, str(r["n"]), f"{r['accuracy']:.1%}", f"{lo:.1%}-{hi:.1%}", *passes)
    Console().print(table)

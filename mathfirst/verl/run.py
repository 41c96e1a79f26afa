"""`mathfirst run --engine verl`: export the stages, run them on verl (Ray; RAY_ADDRESS for a cluster) through the
exported launch.sh, then evaluate every stage's merged checkpoint on the benchmarks. Re-running resumes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

from mathfirst.config import RunConfig
from mathfirst.eval.suites import SHIPPED
from mathfirst.verl.export import export_verl


class VerlUnavailable(Exception):
    """verl cannot run here: printed as one line."""


def check_engine() -> None:
    missing = [m for m in ("verl", "ray", "vllm") if importlib.util.find_spec(m) is None]
    if missing:
        raise VerlUnavailable(
            f"--engine verl needs {', '.join(missing)}: pip install 'mathfirst[verl]' on GPU machines"
        )


def run_on_verl(cfg: RunConfig, out: Path) -> dict:
    """Export, train every stage on verl, then evaluate each merged stage; results in out/benchmarks.json."""
    check_engine()
    if cfg.model.init == "tiny":
        raise VerlUnavailable("--engine verl trains a real model: set model.init to a Hugging Face folder")
    folders = export_verl(cfg, out / "verl")
    env = {**os.environ, "MODEL": str(Path(cfg.model.init).resolve())}
    subprocess.run(["bash", str(out / "verl" / "launch.sh")], env=env, check=True)

    from mathfirst.eval.backends import make_backend
    from mathfirst.eval.benchmarks import evaluate_benchmarks, print_results

    results = {}
    for stage, folder in folders.items():
        backend = make_backend(str(folder / "merged"), "vllm")
        report = evaluate_benchmarks(
            backend,
            SHIPPED,
            out / stage / "benchmarks.json",
            samples=cfg.eval.samples,
            temperature=cfg.eval.temperature,
            max_tokens=cfg.eval.max_new_tokens,
        )
        print_results(report)
        results[stage] = report["benchmarks"]
    (out / "benchmarks.json").write_text(json.dumps(results, indent=2))
    return results

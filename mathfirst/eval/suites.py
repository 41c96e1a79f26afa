"""Benchmark suites: each loader reads one benchmark's original file format into `BenchItem`s that
name their prompt template and carry what the verifier needs (`mathfirst.rewards.compute_score`).

Shipped here with their licenses: MATH500, AIME24, GSM8K, HumanEval, CRUXEval, MMLU-STEM. Read from a
user's own copy (`--data NAME=PATH`): GPQA-diamond, MBPP, LiveCodeBench, ZebraLogic, Knights-and-Knaves,
FinQA, HiTab."""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import pickle
import random
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mathfirst.data.rows import DataError, read_rows

DATA = Path(__file__).parent.parent / "benchmarks"  # the shipped files, each with its license
LETTERS = "ABCDEFGHIJ"
KK_ASK = "Who is a knight and who is a knave? End with one line per person: `NAME is a knight` or `NAME is a knave`."


@dataclass(frozen=True)
class BenchItem:
    id: str
    question: str  # fills the template's {question}
    template: str  # a file in mathfirst/prompts/benchmark/
    data_source: str
    ground_truth: str
    extra_info: dict[str, Any] = field(default_factory=dict)


def need(row: dict, columns: tuple[str, ...], path: Path, n: int) -> None:
    missing = [c for c in columns if c not in row]
    if missing:
        raise DataError(f"{path}: row {n} has no `{missing[0]}` column (expected {', '.join(columns)})")


def rows_of(path: Path, columns: tuple[str, ...]) -> list[dict]:
    if path.suffix == ".gz":
        rows = [json.loads(line) for line in gzip.open(path, "rt") if line.strip()]
    elif path.suffix == ".csv":
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    elif path.suffix == ".json":
        rows = json.loads(path.read_text())
        if not isinstance(rows, list):
            raise DataError(f"{path}: expected a JSON list of rows")
    else:
        rows = read_rows(path)
    for n, row in enumerate(rows, 1):
        need(row, columns, path, n)
    return rows


def choice_question(question: str, choices: list[str]) -> str:
    return question.strip() + "\n\n" + "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))


def math500(path: Path) -> list[BenchItem]:
    rows = rows_of(path, ("problem", "answer"))
    return [
        BenchItem(r.get("unique_id", str(i)), r["problem"], "math", "math500", r["answer"], {"ability": "math"})
        for i, r in enumerate(rows)
    ]


def aime24(path: Path) -> list[BenchItem]:
    rows = rows_of(path, ("problem", "answer"))
    return [
        BenchItem(str(r.get("id", i)), r["problem"], "math", "aime24", str(r["answer"]), {"ability": "math"})
        for i, r in enumerate(rows)
    ]


def gsm8k(path: Path) -> list[BenchItem]:
    """The final answer follows `####` in the reference solution."""
    items = []
    for i, r in enumerate(rows_of(path, ("question", "answer"))):
        if "####" not in r["answer"]:
            raise DataError(f"{path}: row {i + 1} column `answer` has no '#### <final answer>'")
        gold = r["answer"].split("####")[-1].strip().replace(",", "")
        items.append(BenchItem(str(i), r["question"], "math", "gsm8k", gold, {"ability": "math"}))
    return items


def humaneval(path: Path) -> list[BenchItem]:
    rows = rows_of(path, ("task_id", "prompt", "entry_point", "test"))
    return [
        BenchItem(
            r["task_id"],
            r["prompt"],
            "code_function",
            "humaneval",
            json.dumps({"entry_point": r["entry_point"], "test": r["test"], "prompt": r["prompt"]}),
            {"ability": "code"},
        )
        for r in rows
    ]


def mbpp(path: Path) -> list[BenchItem]:
    """MBPP's own JSONL: the task text plus its asserts, which also name the function to write."""
    items = []
    for i, r in enumerate(rows_of(path, ("task_id", "text", "test_list"))):
        tests = list(r["test_list"])
        name = re.match(r"\s*assert\s+(?:not\s+)?\(?\s*(?:set\()?\s*(\w+)\s*\(", tests[0]) if tests else None
        if name is None:
            raise DataError(f"{path}: row {i + 1} column `test_list` has no `assert f(...)` test")
        setup = r.get("test_setup_code") or ""
        test = setup + "\ndef check(candidate):\n" + "".join(f"    {t}\n" for t in tests)
        question = f"{r['text']}\nYour code should pass these tests:\n" + "\n".join(tests)
        spec = {"entry_point": name.group(1), "test": test}
        items.append(BenchItem(str(r["task_id"]), question, "code", "mbpp", json.dumps(spec), {"ability": "code"}))
    return items


class NoObjects(pickle.Unpickler):
    """LiveCodeBench pickles plain strings; anything that would import code is refused."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def lcb_cases(text: str) -> list[dict]:
    """LiveCodeBench test cases: JSON, or base64(zlib(pickle(JSON))) for the private ones."""
    if not text:
        return []
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raw = zlib.decompress(base64.b64decode(text))
        return json.loads(NoObjects(io.BytesIO(raw)).load())


def livecodebench(path: Path) -> list[BenchItem]:
    """code_generation_lite rows: stdin/stdout problems, and LeetCode-style `class Solution` problems."""
    items = []
    for i, r in enumerate(rows_of(path, ("question_id", "question_content", "public_test_cases"))):
        try:
            cases = lcb_cases(r["public_test_cases"]) + lcb_cases(r.get("private_test_cases") or "")
        except (ValueError, zlib.error, pickle.UnpicklingError) as e:
            raise DataError(f"{path}: row {i + 1} has unreadable test cases ({e})") from None
        starter = r.get("starter_code") or ""
        if cases and cases[0].get("testtype") == "functional":
            func = json.loads(r.get("metadata") or "{}").get("func_name")
            if not func:
                raise DataError(f"{path}: row {i + 1} is functional but `metadata` has no func_name")
            lines = []
            for c in cases:
                args = ", ".join(line for line in c["input"].splitlines() if line.strip())
                lines.append(f"    assert candidate().{func}({args}) == {c['output'].strip()}\n")
            spec = {"entry_point": "Solution", "test": "def check(candidate):\n" + "".join(lines)}
        else:
            spec = {"inputs": [c["input"] for c in cases], "outputs": [c["output"] for c in cases]}
        question = r["question_content"] + (f"\n\nStart from this code:\n```python\n{starter}\n```" if starter else "")
        template = "code" if starter else "code_stdin"
        items.append(
            BenchItem(str(r["question_id"]), question, template, "livecodebench", json.dumps(spec), {"ability": "code"})
        )
    return items


def cruxeval(path: Path) -> list[BenchItem]:
    """Output prediction (CRUXEval-O): given f and its input, state f(input)."""
    items = []
    for r in rows_of(path, ("id", "code", "input", "output")):
        question = f"```python\n{r['code']}\n```\nWhat is the value of `f({r['input']})`?"
        spec = json.dumps({"code": r["code"], "output": r["output"]})
        items.append(BenchItem(r["id"], question, "cruxeval", "cruxeval", spec, {"ability": "simulation"}))
    return items


def mmlu_stem(path: Path) -> list[BenchItem]:
    rows = rows_of(path, ("question", "choices", "answer"))
    return [
        BenchItem(
            str(i),
            choice_question(r["question"], r["choices"]),
            "choice",
            "mmlu_stem",
            LETTERS[int(r["answer"])],
            {"ability": "stem", "subject": r.get("type")},
        )
        for i, r in enumerate(rows)
    ]


def gpqa_diamond(path: Path) -> list[BenchItem]:
    """The authors' CSV; the four options are shuffled with a seed fixed per question."""
    columns = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
    items = []
    for i, r in enumerate(rows_of(path, columns)):
        rid = r.get("Record ID") or str(i)
        options = [r[c].strip() for c in columns[1:]]
        order = list(range(4))
        random.Random(rid).shuffle(order)
        choices = [options[j] for j in order]
        gold = LETTERS[order.index(0)]
        items.append(
            BenchItem(rid, choice_question(r["Question"], choices), "choice", "gpqa_diamond", gold, {"ability": "stem"})
        )
    return items


def zebra(path: Path) -> list[BenchItem]:
    """ZebraLogic grid mode: the answer is the whole solution grid."""
    items = []
    for r in rows_of(path, ("id", "puzzle", "solution")):
        header, rows = r["solution"]["header"], r["solution"]["rows"]
        grid = {f"{header[0]} {row[0]}": dict(zip(header[1:], row[1:])) for row in rows}
        example = json.dumps({f"{header[0]} {rows[0][0]}": {h: "___" for h in header[1:]}})
        shape = f"Give the full solution as JSON in this shape: {example} (one entry per {header[0].lower()})."
        question = f"{r['puzzle']}\n\n{shape}"
        items.append(BenchItem(r["id"], question, "logic", "zebra", json.dumps(grid), {"ability": "logic"}))
    return items


def knights_knaves(path: Path) -> list[BenchItem]:
    """Knights-and-Knaves (Xie et al.): who is a knight (always truthful) and who a knave (always lies)."""
    items = []
    for i, r in enumerate(rows_of(path, ("quiz", "names", "solution"))):
        gold = {name: ("knight" if knight else "knave") for name, knight in zip(r["names"], r["solution"])}
        question = r["quiz"] + "\n\n" + KK_ASK
        items.append(
            BenchItem(str(r.get("id", i)), question, "logic", "knights_knaves", json.dumps(gold), {"ability": "logic"})
        )
    return items


def table_text(rows: list[list]) -> str:
    return "\n".join(" | ".join(str(c) for c in row) for row in rows)


def finqa(path: Path) -> list[BenchItem]:
    """FinQA's JSON list: report text around a table, and a question whose answer is a number (`exe_ans`)."""
    items = []
    for i, r in enumerate(rows_of(path, ("id", "pre_text", "post_text", "table", "qa"))):
        if "question" not in r["qa"] or "exe_ans" not in r["qa"]:
            raise DataError(f"{path}: row {i + 1} column `qa` needs `question` and `exe_ans`")
        context = " ".join(r["pre_text"]) + "\n\n" + table_text(r["table"]) + "\n\n" + " ".join(r["post_text"])
        question = f"{context}\n\nQuestion: {r['qa']['question']}"
        gold = json.dumps([r["qa"]["exe_ans"]])
        items.append(BenchItem(r["id"], question, "table", "finqa", gold, {"ability": "table"}))
    return items


def hitab(path: Path) -> list[BenchItem]:
    """HiTab samples (`*_samples.jsonl`), with each table read from `tables/raw/<table_id>.json` beside them."""
    tables = path.parent / "tables" / "raw"
    items = []
    for i, r in enumerate(rows_of(path, ("id", "table_id", "question", "answer"))):
        table_file = tables / f"{r['table_id']}.json"
        if not table_file.is_file():
            raise DataError(f"{path}: row {i + 1} needs its table {table_file}")
        table = json.loads(table_file.read_text())
        question = f"{table.get('title', '')}\n{table_text(table['texts'])}\n\nQuestion: {r['question']}"
        items.append(BenchItem(r["id"], question, "table", "hitab", json.dumps(r["answer"]), {"ability": "table"}))
    return items


@dataclass(frozen=True)
class Benchmark:
    load: Callable[[Path], list[BenchItem]]
    shipped: Path | None  # the file in this package, or None when the user must point at their copy
    file_format: str  # what a user's file must look like
    verifier: str  # rewards.VERIFIERS (or judge): named on every item, so no list elsewhere has to know the benchmark


SUITES: dict[str, Benchmark] = {
    "math500": Benchmark(math500, DATA / "math500" / "test.jsonl", "JSONL: problem, answer", "math"),
    "aime24": Benchmark(aime24, DATA / "aime24" / "test.jsonl", "JSONL: id, problem, answer", "math"),
    "gsm8k": Benchmark(gsm8k, DATA / "gsm8k" / "test.jsonl", "JSONL: question, answer ('... #### 18')", "math"),
    "humaneval": Benchmark(humaneval, DATA / "humaneval" / "HumanEval.jsonl.gz", "JSONL(.gz): HumanEval", "code"),
    "cruxeval": Benchmark(cruxeval, DATA / "cruxeval" / "test.jsonl", "JSONL: id, code, input, output", "output"),
    "mmlu_stem": Benchmark(mmlu_stem, DATA / "mmlu_stem" / "test.jsonl", "JSONL: question, choices, answer", "choice"),
    "gpqa_diamond": Benchmark(gpqa_diamond, None, "CSV: gpqa_diamond.csv from the authors' zip", "choice"),
    "mbpp": Benchmark(mbpp, None, "JSONL: mbpp.jsonl (task_id, text, test_list, test_setup_code)", "code"),
    "livecodebench": Benchmark(livecodebench, None, "JSONL: code_generation_lite test*.jsonl", "code"),
    "zebra": Benchmark(zebra, None, "JSONL/parquet: ZebraLogicBench grid_mode (id, puzzle, solution)", "grid"),
    "knights_knaves": Benchmark(knights_knaves, None, "JSONL: K&K test (quiz, names, solution)", "roles"),
    "finqa": Benchmark(finqa, None, "JSON: FinQA test.json (pre_text, post_text, table, qa)", "values"),
    "hitab": Benchmark(hitab, None, "JSONL: HiTab test_samples.jsonl with tables/raw/ beside it", "values"),
}
SHIPPED = [name for name, b in SUITES.items() if b.shipped is not None]


def load_benchmark(name: str, path: str | Path | None = None, limit: int | None = None) -> list[BenchItem]:
    """A benchmark's items, from `path` or the shipped copy; a clear error for unknown names and missing files."""
    if name not in SUITES:
        raise DataError(f"unknown benchmark {name!r}; known: {', '.join(SUITES)}")
    bench = SUITES[name]
    file = Path(path) if path else bench.shipped
    if file is None:
        raise DataError(f"{name} is not shipped (license); pass --data {name}=PATH to your copy ({bench.file_format})")
    if not file.is_file():
        raise DataError(f"{name}: file not found: {file}")
    try:
        items = bench.load(file)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise DataError(f"{file}: not in {name}'s format ({bench.file_format}): {type(e).__name__}: {e}") from None
    items = [replace(i, extra_info={**i.extra_info, "verifier": bench.verifier}) for i in items]
    return items[:limit] if limit else items

"""The program a chat answer's code makes, as a user would take it: the definitions the entry point needs.

After evalplus's `sanitize` (github.com/evalplus/evalplus, evalplus/sanitize.py: the entry point and its
dependencies), but over all of the answer's code instead of its longest valid span, and later definitions win:
1. Pieces: the answer is cut at its fence lines (```python, ```py, ```, ...) and every piece counts that parses
   as Python, inside a fence or not, so a missing, stray or unclosed fence loses nothing. A piece that does
   not parse loses each top-level statement that does not (a line of prose, a function cut off by the token
   limit, a half-written second version) and keeps the rest. With a prompt (HumanEval), the prompt is the
   first piece, and a piece that parses only after it is the rest of the prompt's function (a completion).
2. Definitions: top-level imports, functions, classes and assignments to plain names, in the order the pieces
   run; a later definition of a name replaces an earlier one, as a corrected version does. Every other
   statement (calls, prints, asserts, loops, `if __name__ == "__main__":`) is example usage or the answer's
   own tests, and goes, whichever piece it is in.
3. Reach: from the entry point and the global names the trusted test reads (HumanEval/38's test calls the
   program's `encode_cyclic`), follow the global names each definition reads (`symtable`'s, so a function's
   local `result` does not pull in an example's `result = f(3)`), and keep what is reached, in run order.
Nothing is executed: the answer is only parsed. Star imports and definitions inside `if`/`try` are dropped.
"""

from __future__ import annotations

import ast
import builtins
import re
import symtable
import warnings
from dataclasses import dataclass

FENCE_LINE = re.compile(r"^[ \t]*```.*$", re.MULTILINE)
UNPARSEABLE = (SyntaxError, ValueError, RecursionError, MemoryError)  # ValueError: null bytes, lone surrogates
BUILTINS = frozenset(dir(builtins))  # the test's own `len`, `abs`...: never taken from the answer
FILENAME = "<answer>"  # what the parser calls the answer's code; its warnings stay out of the trainer's log
warnings.filterwarnings("ignore", module=FILENAME)


@dataclass(frozen=True)
class Definition:
    """A top-level statement that binds names, and the global names it reads."""

    names: frozenset[str]
    reads: frozenset[str]
    node: ast.stmt


def sanitize(answer: str, entry_point: str, test: str = "", prompt: str = "") -> str:
    """The program the answer's code makes: the definitions that `entry_point` and `test` reach, in run order."""
    definitions = [d for module in pieces(answer, prompt) for d in map(definition, module.body) if d]
    latest = {name: i for i, d in enumerate(definitions) for name in d.names}  # a later definition wins
    kept, todo = set(), [latest[n] for n in {entry_point} | (global_names(test) - BUILTINS) if n in latest]
    while todo:
        i = todo.pop()
        if i not in kept:
            kept.add(i)
            todo += [latest[n] for n in definitions[i].reads if n in latest]
    return ast.unparse(ast.Module([definitions[i].node for i in sorted(kept)], type_ignores=[]))


def pieces(answer: str, prompt: str = "") -> list[ast.Module]:
    """The code of the prompt and of every piece of the answer between fence lines, parsed, in order."""
    parsed = [parse_salvaged(prompt)] if prompt else []
    for piece in FENCE_LINE.split(answer):
        whole = parse(piece)
        if whole is None and prompt:
            whole = parse(prompt + "\n" + piece)  # the body of the prompt's function
        parsed.append(whole if whole is not None else parse_salvaged(piece))
    return parsed


def parse(code: str) -> ast.Module | None:
    """The code's syntax tree, or None when it does not parse."""
    try:
        return ast.parse(code, FILENAME)
    except UNPARSEABLE:
        return None


def parse_salvaged(code: str) -> ast.Module:
    """The code's top-level statements that parse, each broken one left out (prose, a function cut off)."""
    lines = code.split("\n")
    starts = [i for i, line in enumerate(lines) if line[:1] not in ("", " ", "\t", "#")]  # where statements begin
    statements, begin, end = [], 0, len(lines)
    while begin < len(lines):
        try:
            statements += ast.parse("\n".join(lines[begin:end]), FILENAME).body
            begin, end = end, len(lines)
        except UNPARSEABLE as e:
            error_line = begin + min(getattr(e, "lineno", None) or end - begin, end - begin) - 1
            broken = max(i for i in [begin, *starts] if i <= error_line)  # where the broken statement begins
            if broken > begin:
                end = broken  # first the statements before it
            else:
                begin, end = next((i for i in starts if i > error_line), len(lines)), len(lines)  # then skip it
    return ast.Module(statements, type_ignores=[])


def definition(node: ast.stmt) -> Definition | None:
    """What a top-level statement defines and reads; None when it defines nothing or would not compile."""
    names = bound_names(node)
    if not names:
        return None
    try:
        reads = global_names(ast.unparse(node))
    except UNPARSEABLE:  # parses, yet would not compile: `nonlocal x` in a top-level function
        return None
    return Definition(frozenset(names), frozenset(reads), node)


def bound_names(node: ast.stmt) -> set[str]:
    """The names a definition binds: a function's or class's, an import's, an assignment's plain-name targets."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in node.names if alias.name != "*"}
    if isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(node.target, ast.Name):
        return {node.target.id}
    if isinstance(node, ast.Assign):
        targets = [t for target in node.targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
        if all(isinstance(t, ast.Name) for t in targets):
            return {t.id for t in targets}
    return set()


def global_names(code: str) -> set[str]:
    """The global names code reads: at its top level, and in its functions and classes where they are not local."""
    top = symtable.symtable(code, FILENAME, "exec")
    names, tables = set(), [top]
    while tables:
        table = tables.pop()
        names |= {s.get_name() for s in table.get_symbols() if s.is_referenced() and (table is top or s.is_global())}
        tables += table.get_children()
    return names

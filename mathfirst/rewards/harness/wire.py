"""The wire between the program under test and the trusted check: messages are length-prefixed JSON. Stdlib
only: its text runs ahead of program.py in the sandbox and ahead of trusted.py in the check's process, and the
trainer imports it (check.py)."""

import builtins
import json
import os
import struct

MAX_MESSAGE = 64 * 2**20  # bytes; a longer message ends the check (it fails)
MAX_TEXT = 2000  # characters of an error's message that cross
# Modules the check holds itself: a program's module of one of these names stands for the check's own copy (a
# test may use the `math` its program imported); any other module stays with the program, as a reference.
SHARED_MODULES = ("bisect", "cmath", "collections", "copy", "decimal", "fractions", "functools", "hashlib")
SHARED_MODULES += ("heapq", "itertools", "json", "math", "operator", "random", "re", "statistics", "string", "typing")


class CrossedError(Exception):
    """An error from the other side that is not one of Python's own exceptions."""


def _plain_exceptions() -> dict[str, type]:
    """Python's own exceptions that take one message, and CrossedError: all an error from the wire becomes."""
    kinds = {}
    for name, kind in vars(builtins).items():
        if isinstance(kind, type) and issubclass(kind, Exception):
            try:
                kind("message")
            except TypeError:
                continue
            kinds[name] = kind
    return kinds | {"CrossedError": CrossedError}


EXCEPTIONS = _plain_exceptions()


def error(name: object, message: object) -> Exception:
    """The exception an error message stands for: one of `EXCEPTIONS`, else a `CrossedError` naming it."""
    kind = EXCEPTIONS.get(name) if type(name) is str else None
    text = str(message)[:MAX_TEXT]
    return kind(text) if kind else CrossedError(f"{str(name)[:100]}: {text}")


def send(fd: int, message: object) -> None:
    data = json.dumps(message).encode()
    data = struct.pack(">Q", len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


def read_exactly(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the wire")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(fd: int) -> object:
    (size,) = struct.unpack(">Q", read_exactly(fd, 8))
    if size > MAX_MESSAGE:
        raise ValueError(f"a message of {size} bytes is over the {MAX_MESSAGE}-byte limit")
    return json.loads(read_exactly(fd, size))


def encode(x, other):
    """Plain data as tagged JSON: JSON's own types as they are (exact types: no subclass passes as its
    base), tuples, sets, frozensets, dicts, bytes and complex tagged; anything else is `other(x)`."""
    kind = type(x)
    if x is None or kind in (bool, int, float, str):
        return x
    if kind is list:
        return [encode(v, other) for v in x]
    if kind in (tuple, set, frozenset):
        return {kind.__name__: [encode(v, other) for v in x]}
    if kind is dict:
        return {"dict": [[encode(k, other), encode(v, other)] for k, v in x.items()]}
    if kind is bytes:
        return {"bytes": x.hex()}
    if kind is complex:
        return {"complex": [x.real, x.imag]}
    return other(x)


def decode(v, tagged):
    """The inverse of `encode`; a tag it does not know (a reference, a module) is `tagged(tag, value)`."""
    if isinstance(v, list):
        return [decode(x, tagged) for x in v]
    if not isinstance(v, dict):
        return v
    ((tag, x),) = v.items()
    if tag == "dict":
        return {decode(k, tagged): decode(y, tagged) for k, y in x}
    if tag == "bytes":
        return bytes.fromhex(x)
    if tag == "complex":
        return complex(*x)
    if tag in ("tuple", "set", "frozenset"):
        return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](decode(y, tagged) for y in x)
    return tagged(tag, x)

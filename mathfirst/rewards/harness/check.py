"""The trusted check, in the verifier's own process: the test runs against references to the program's
functions, which call into the program's sandbox over pipes and get back only what JSON decodes to: genuine
builtins, or opaque references that equal only themselves. Nothing the program does reaches this process
but those messages, so frame tricks, always-equal objects, patched builtins and early exits cannot pass."""

from __future__ import annotations

import builtins
import importlib

from mathfirst.rewards.harness.wire import decode, encode, receive, send


class RemoteError(Exception):
    """The program raised an exception that is not one of Python's own."""


class Program:
    """The program under test, at the other end of two pipes."""

    def __init__(self, requests: int, replies: int):
        self.requests, self.replies = requests, replies

    def ask(self, request: dict):
        send(self.requests, request)
        reply = receive(self.replies)
        if "error" in reply:
            name, message = reply["error"]
            kind = getattr(builtins, str(name), None)
            if isinstance(kind, type) and issubclass(kind, Exception):
                raise kind(str(message))
            raise RemoteError(f"{name}: {message}")
        return self.decode(reply["value"])

    def decode(self, v):
        return decode(v, self.tagged)

    def tagged(self, tag: str, x):
        if tag == "ref":
            return Remote(self, int(x))
        if tag == "module":
            return importlib.import_module(str(x))
        raise ValueError(f"unknown tag {tag!r}")


class Remote:
    """An object of the program under test; it equals only itself."""

    __slots__ = ("program", "ref")

    def __init__(self, program: Program, ref: int):
        object.__setattr__(self, "program", program)
        object.__setattr__(self, "ref", ref)

    def operate(self, op: str, args: list, kwargs: dict | None = None):
        args, kwargs = encode(args, reference), encode(kwargs or {}, reference)
        return self.program.ask({"op": op, "ref": self.ref, "args": args, "kwargs": kwargs})

    def __call__(self, *args, **kwargs):
        return self.operate("call", list(args), kwargs)

    def __getattr__(self, name: str):
        return self.program.ask({"op": "getattr", "ref": self.ref, "name": name})

    def __repr__(self) -> str:
        return f"<object #{self.ref} of the program under test>"

    # len(x), iter(x), x[i]...: Python looks these up on the type, so each is one remote operation
    def __len__(self):
        return self.operate("len", [])

    def __iter__(self):
        return self.operate("iter", [])

    def __next__(self):
        return self.operate("next", [])

    def __getitem__(self, key):
        return self.operate("getitem", [key])

    def __contains__(self, item):
        return self.operate("contains", [item])


def reference(x):
    if type(x) is Remote:
        return {"ref": x.ref}
    raise TypeError(f"the check cannot pass a {type(x).__name__} to the program under test")


def run_test(test: str, entry_point: str, requests: int, replies: int) -> None:
    """Run `test`'s `check(entry_point)` against the program; returns only when the test passed."""
    program = Program(requests, replies)
    hello = receive(replies)
    scope = {}
    for name, value in hello["globals"].items():
        try:
            scope[str(name)] = program.decode(value)
        except ImportError:
            pass
    scope |= {"__name__": "__main__", "__builtins__": builtins}
    exec(compile(test, "test.py", "exec"), scope)
    scope["check"](scope[entry_point])

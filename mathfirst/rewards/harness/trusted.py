"""The trusted check, in a process of its own that the trainer starts and may kill (check.py): the test runs
against references to the program's functions, which call into the program's sandbox over pipes and get back
only what JSON decodes to: genuine builtins, the check's own copy of a module in SHARED_MODULES, or opaque
references that equal only themselves. Nothing the program sends is imported, looked up or called by its name:
a module name picks from the modules imported here, an error's name from Python's own exceptions (EXCEPTIONS),
and anything else fails the check. So frame tricks, always-equal objects, patched builtins, early exits and
forged messages cannot pass, nor run code here."""

# ruff: noqa: F821 - send, receive, encode, decode, error and the constants come from wire.py, which precedes this

import builtins
import importlib
import os
import socket
import threading
import time

MODULES = {name: importlib.import_module(name) for name in SHARED_MODULES}


class Program:
    """The program under test, at the other end of two pipes."""

    def __init__(self, requests: int, replies: int):
        self.requests, self.replies = requests, replies

    def ask(self, request: dict):
        send(self.requests, request)
        reply = receive(self.replies)
        if "error" in reply:
            raise error(*reply["error"])
        return self.decode(reply["value"])

    def decode(self, v):
        return decode(v, self.tagged)

    def tagged(self, tag: str, x):
        if tag == "ref":
            return Remote(self, int(x))
        if tag == "module" and type(x) is str and x in MODULES:
            return MODULES[x]
        raise ValueError(f"the program sent {str(tag)[:100]!r}, which the check does not take")


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
        if name.startswith("__") and name.endswith("__"):  # a protocol a library asks of values: never the program's
            raise AttributeError(name)
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
        except (ValueError, TypeError):  # a value the check does not take is left out
            pass
    scope |= {"__name__": "__main__", "__builtins__": builtins}
    exec(compile(test, "test.py", "exec"), scope)
    scope["check"](scope[entry_point])


def serve_checks(channel: int) -> None:
    """Run checks as the trainer sends them: the program's two pipe ends arrive over `channel` (a Unix socket),
    then the test; the verdict goes back. Ends when the trainer closes the channel or is gone."""
    threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True).start()
    wire = socket.socket(fileno=channel)
    while True:
        _, fds, _, _ = socket.recv_fds(wire, 1, 2)
        if not fds:
            os._exit(0)
        requests, replies = fds
        try:
            request = receive(channel)
            run_test(request["test"], request["entry_point"], requests, replies)
            verdict = {"passed": True}
        except BaseException as e:  # noqa: BLE001 - every failure of the test goes back as the verdict
            verdict = {"error": [type(e).__name__, describe(e)]}
        finally:
            os.close(requests)  # the program reads EOF once the trainer's ends are closed too
            os.close(replies)
        send(channel, verdict)


def describe(e: BaseException) -> str:
    try:
        return str(e)[:MAX_TEXT]
    except Exception:  # noqa: BLE001 - a test's own exception may not print
        return "(unprintable)"


def exit_with_parent(parent: int) -> None:
    """End this process once the trainer is gone (a check that hangs would otherwise outlive it)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)

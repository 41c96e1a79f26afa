"""The trusted check's side: run the test against references to the program's functions, which call into the
program's sandbox and get back only what JSON decodes to (genuine builtins, or opaque references that equal
only themselves). The nonce that proves the test ran to its end arrives through a pipe the program never
sees, and is written last."""

# ruff: noqa: F821 - send and receive come from wire.py, which precedes this text in the sandbox


def run_check(test: str, entry_point: str) -> None:
    import builtins
    import importlib
    import os
    import sys

    nonce_fd, requests, replies = (int(a) for a in sys.argv[1:4])
    del sys.argv[1:]
    nonce = os.read(nonce_fd, 64)
    os.close(nonce_fd)

    class RemoteError(Exception):
        """The program raised an exception that is not one of Python's own."""

    class Remote:
        """An object of the program under test; it equals only itself."""

        __slots__ = ("ref",)

        def __init__(self, ref: int):
            object.__setattr__(self, "ref", ref)

        def __call__(self, *args, **kwargs):
            return ask({"op": "call", "ref": self.ref, "args": encode(list(args)), "kwargs": encode(kwargs)})

        def __getattr__(self, name: str):
            return ask({"op": "getattr", "ref": self.ref, "name": name})

        def __repr__(self) -> str:
            return f"<object #{self.ref} of the program under test>"

    def forward(op: str):
        """`len(x)`, `iter(x)`, `x[i]`... on a reference: Python looks these up on the type, not the object,
        so each is one remote operation of its own."""
        return lambda self, *args: ask({"op": op, "ref": self.ref, "args": encode(list(args)), "kwargs": encode({})})

    for name, op in (("__len__", "len"), ("__iter__", "iter"), ("__next__", "next"), ("__getitem__", "getitem"),
                     ("__contains__", "contains")):  # fmt: skip
        setattr(Remote, name, forward(op))

    def encode(x):
        kind = type(x)
        if x is None or kind in (bool, int, float, str):
            return x
        if kind is list:
            return [encode(v) for v in x]
        if kind in (tuple, set, frozenset):
            return {kind.__name__: [encode(v) for v in x]}
        if kind is dict:
            return {"dict": [[encode(k), encode(v)] for k, v in x.items()]}
        if kind is bytes:
            return {"bytes": x.hex()}
        if kind is complex:
            return {"complex": [x.real, x.imag]}
        if kind is Remote:
            return {"ref": x.ref}
        raise TypeError(f"the check cannot pass a {kind.__name__} to the program under test")

    def decode(v):
        if isinstance(v, list):
            return [decode(x) for x in v]
        if not isinstance(v, dict):
            return v
        ((tag, x),) = v.items()
        if tag == "ref":
            return Remote(int(x))
        if tag == "dict":
            return {decode(k): decode(y) for k, y in x}
        if tag == "bytes":
            return bytes.fromhex(x)
        if tag == "complex":
            return complex(*x)
        if tag == "module":
            return importlib.import_module(str(x))
        return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](decode(y) for y in x)

    def ask(request: dict):
        send(requests, request)
        reply = receive(replies)
        if "error" in reply:
            name, message = reply["error"]
            kind = getattr(builtins, str(name), None)
            if isinstance(kind, type) and issubclass(kind, Exception):
                raise kind(str(message))
            raise RemoteError(f"{name}: {message}")
        return decode(reply["value"])

    hello = receive(replies)
    scope = {}
    for name, value in hello["globals"].items():
        try:
            scope[str(name)] = decode(value)
        except ImportError:
            pass
    scope |= {"__name__": "__main__", "__builtins__": builtins}
    exec(compile(test, "test.py", "exec"), scope)
    scope["check"](scope[entry_point])
    sys.stdout.flush()
    os.write(1, b"\n" + nonce + b"\n")
    os._exit(0)

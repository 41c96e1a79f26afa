"""The program under test's side: run the program, then answer the check's calls into it. Every value sent
back is plain data (JSON with tags for tuples, sets, dicts, bytes, complex); any other object stays here and
crosses as an opaque reference. Nothing here is trusted: the check decodes only JSON, so whatever this side
does (frame tricks, always-equal objects, int subclasses, early exits) cannot produce a pass."""

# ruff: noqa: F821 - send and receive come from wire.py, which precedes this text in the sandbox


def serve_program(program: str) -> None:
    import builtins
    import os
    import sys
    import types

    sys.set_int_max_str_digits(0)  # big integers go out whole (the check reads them up to its own limit)
    requests, replies = int(sys.argv[1]), int(sys.argv[2])
    del sys.argv[1:]
    refs: list = []

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
        if kind is types.ModuleType:
            return {"module": x.__name__}
        refs.append(x)
        return {"ref": len(refs) - 1}

    def decode(v):
        if isinstance(v, list):
            return [decode(x) for x in v]
        if not isinstance(v, dict):
            return v
        ((tag, x),) = v.items()
        if tag == "ref":
            return refs[x]
        if tag == "dict":
            return {decode(k): decode(y) for k, y in x}
        if tag == "bytes":
            return bytes.fromhex(x)
        if tag == "complex":
            return complex(*x)
        return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](decode(y) for y in x)

    operations = {"len": len, "iter": iter, "next": next, "getitem": lambda t, i: t[i], "contains": lambda t, x: x in t}
    scope = {"__name__": "__main__", "__builtins__": builtins}
    exec(compile(program, "solution.py", "exec"), scope)
    names = {}
    for name, value in scope.items():
        if name != "__builtins__":
            try:
                names[name] = encode(value)
            except RecursionError:
                pass
    send(replies, {"globals": names})
    while True:
        try:
            request = receive(requests)
        except EOFError:
            os._exit(0)
        try:
            target = refs[request["ref"]]
            if request["op"] == "getattr":
                value = getattr(target, request["name"])
            else:
                op = operations.get(request["op"], target)
                args = ((target,) if op is not target else ()) + tuple(decode(request["args"]))
                value = op(*args, **decode(request["kwargs"]))
            reply = {"value": encode(value)}
        except BaseException as e:  # noqa: BLE001 - every failure goes back to the check as an error
            reply = {"error": [type(e).__name__, str(e)[:2000]]}
        send(replies, reply)

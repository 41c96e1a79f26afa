"""The program under test's side: run the program, then answer the check's calls into it. Every value sent
back is plain data (JSON with tags for tuples, sets, dicts, bytes, complex, and the names of modules the check
holds itself); any other object stays here and crosses as an opaque reference. Nothing here is trusted: the
check decodes only JSON, so whatever this side does (frame tricks, always-equal objects, int subclasses, early
exits, forged messages) cannot produce a pass."""

# ruff: noqa: F821 - send, receive, encode, decode, SHARED_MODULES and MAX_TEXT come from wire.py, which precedes this text in the sandbox


def serve_program(program: str) -> None:
    import builtins
    import os
    import sys
    import types

    sys.set_int_max_str_digits(0)  # big integers go out whole (the check reads them up to its own limit)
    requests, replies = int(sys.argv[1]), int(sys.argv[2])
    del sys.argv[1:]
    refs: list = []

    def reference(x):
        if type(x) is types.ModuleType and x.__name__ in SHARED_MODULES:
            return {"module": x.__name__}
        refs.append(x)
        return {"ref": len(refs) - 1}

    def dereference(tag, x):
        if tag != "ref":
            raise ValueError(f"unknown tag {tag!r}")
        return refs[x]

    operations = {"len": len, "iter": iter, "next": next, "getitem": lambda t, i: t[i], "contains": lambda t, x: x in t}
    scope = {"__name__": "__main__", "__builtins__": builtins}
    exec(compile(program, "solution.py", "exec"), scope)
    names = {}
    for name, value in scope.items():
        if name != "__builtins__":
            try:
                names[name] = encode(value, reference)
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
                args = ((target,) if op is not target else ()) + tuple(decode(request["args"], dereference))
                value = op(*args, **decode(request["kwargs"], dereference))
            reply = {"value": encode(value, reference)}
        except BaseException as e:  # noqa: BLE001 - every failure goes back to the check as an error
            reply = {"error": [type(e).__name__, str(e)[:MAX_TEXT]]}
        send(replies, reply)

"""The wire between the program under test and the trusted check: messages are length-prefixed JSON. Stdlib
only: the check imports it, and its text runs in the sandbox ahead of program.py."""

import json
import os
import struct

MAX_MESSAGE = 64 * 2**20  # bytes; a longer message ends the check (it fails)


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

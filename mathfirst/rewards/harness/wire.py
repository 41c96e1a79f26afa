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

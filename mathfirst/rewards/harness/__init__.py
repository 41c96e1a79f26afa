"""Code verification across a process boundary: program.py runs in the sandbox (after wire.py's text), and
check.py, in the verifier's process, runs the trusted test against it over two pipes."""

"""Code verification across two process boundaries: program.py runs in the sandbox (after wire.py's text);
trusted.py, the trusted test, runs in a check process of the verifier's (after wire.py's text too); check.py,
in the trainer, starts check processes and waits for a verdict no longer than a deadline."""

"""`mathfirst bench`: speed and learning against named peers, and the prepared GPU check."""

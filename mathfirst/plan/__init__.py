"""`mathfirst plan`: the memory estimate of a config and the probe that measures it."""

"""The reward verl calls: mathfirst's verifiers as DAPO's +1 / -1 (verl's signature)."""

from mathfirst.rewards import dapo_score as compute_score  # noqa: F401

"""Pass rates of candidate gym task settings for a model: greedy and 4 samples at T=1 on 40 held-out rows each,
to pick a math RL mixture whose groups are informative (neither all right nor all wrong).
Usage: python experiments/smollm2-math/pass_rates.py MODEL_DIR > pass_rates.json"""

import json
import sys

from mathfirst.config import GymTask
from mathfirst.data.assemble import styled
from mathfirst.data.gym import gym_rows
from mathfirst.data.rows import DataError
from mathfirst.eval.heldout import Generation, score_domain
from mathfirst.model import load_model

CANDIDATES = {  # measured 2026-12-07 (docs/real-models.md): basic 2x1, basic 2x2 +-, chain_sum 2x2 and 3x2
    "basic_arithmetic 3x1": (
        "basic_arithmetic",
        {"min_terms": 3, "max_terms": 3, "max_digits": 1, "allow_parentheses": False, "allow_negation": False},
    ),
    "chain_sum 3x1": ("chain_sum", {"min_terms": 3, "max_terms": 3, "max_digits": 1}),
    "chain_sum 4x1": ("chain_sum", {"min_terms": 4, "max_terms": 4, "max_digits": 1}),
    "leg_counting 1 animal <=3": ("leg_counting", {"min_animals": 1, "max_animals": 1, "max_instances": 3}),
    "leg_counting 1-2 animals <=5": ("leg_counting", {"min_animals": 1, "max_animals": 2, "max_instances": 5}),
    "gcd <=20": ("gcd", {"max_value": 20}),
}


def main(model_dir: str) -> None:
    model, tokenizer = load_model(model_dir)
    gen = Generation(max_new_tokens=128, batch_size=64, seed=0, samples=4)
    out = {}
    for label, (name, options) in CANDIDATES.items():
        try:
            tasks = [styled(p, "instruct") for p in gym_rows(name, GymTask(config=options), "heldout", 40, 0)]
        except DataError as error:  # too few distinct held-out questions for this setting
            print(label, error, file=sys.stderr, flush=True)
            continue
        result, records = score_domain(model, tokenizer, tasks, "math", gen, label)
        sampled = [r["score"] for r in records if r["kind"] == "sample"]
        per_task = [sum(sampled[i * 4 : (i + 1) * 4]) / 4 for i in range(len(tasks))]
        informative = sum(0 < p < 1 for p in per_task) / len(per_task)
        out[label] = {"greedy": result["greedy"], "mean@4": result["mean@4"], "informative_share": informative,
                      "format": result["format"]}  # fmt: skip
        print(label, out[label], file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])

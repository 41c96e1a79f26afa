from mathfirst.data.loaders import RLPrompt
from mathfirst.rl.dapo import outcome_rewards
from mathfirst.sampling.scored import sample_scored, verify

MATH = RLPrompt("tiny/math", "math", "Compute 12 + 34.", "46")
LOGIC = RLPrompt("tiny/logic", "logic", "Who is the tallest?", "Ann")


def test_verify_scores_each_response_against_its_own_task():
    texts = ["Answer: \\boxed{46}", "Answer: \\boxed{Bob}", "no answer at all"]
    results = verify([MATH, LOGIC, MATH], texts)
    assert [r["score"] for r in results] == [1.0, 0.0, 0.0]
    assert outcome_rewards([r["score"] for r in results]) == [1.0, -1.0, -1.0]


def test_sample_scored_gives_n_responses_per_task_in_task_order(model_and_tok):
    model, tok = model_and_tok
    out = sample_scored(model, tok, [MATH, LOGIC], 3, max_new_tokens=6, temperature=1.0, seed=1)
    assert len(out.rollouts) == len(out.texts) == len(out.results) == 6
    assert all(r.prompt_ids == out.rollouts[0].prompt_ids for r in out.rollouts[:3])
    assert out.rollouts[3].prompt_ids != out.rollouts[0].prompt_ids
    assert out.scores == [r["score"] for r in verify([MATH] * 3 + [LOGIC] * 3, out.texts)]
    greedy = sample_scored(model, tok, [MATH], 2, max_new_tokens=6, temperature=0.0)
    assert greedy.texts[0] == greedy.texts[1]

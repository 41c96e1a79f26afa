from mathfirst.data.loaders import RLPrompt
from mathfirst.eval.curve import spread


def test_a_curve_subset_is_spread_over_the_task_kinds():
    """Held-out lists come ordered by kind: a subset takes from every kind alike, a prefix would not."""
    tasks = [
        RLPrompt("reasoning_gym/x", "math", f"{kind} {i}", "1", {"kind": kind}) for kind in "abc" for i in range(10)
    ]
    picked = spread(tasks, 6)
    assert [t.extra_info["kind"] for t in picked] == ["a", "a", "b", "b", "c", "c"]
    assert len({t.question for t in picked}) == 6
    assert spread(tasks, None) == tasks and spread(tasks, 50) == tasks

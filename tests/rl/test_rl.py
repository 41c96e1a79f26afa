import copy
import random

import pytest
import torch

from mathfirst.config import EvalConfig, RLConfig, RunConfig, WorldConfig
from mathfirst.data.assemble import task_pools
from mathfirst.data.loaders import RLPrompt
from mathfirst.eval.curve import LearningCurve, read_curve
from mathfirst.model import set_checkpointing
from mathfirst.rl.dapo import agg_loss, kl_penalty
from mathfirst.rl.loop import (
    Group,
    collect_batch,
    collect_streaming,
    loss_settings,
    pack,
    pick_tasks,
    step_metrics,
    train_rl,
    update,
)
from mathfirst.rl.losses import objective
from mathfirst.sampling.rollout import Rollout
from mathfirst.tokenizer import chat_prompt_ids
from mathfirst.train.metrics import read_metrics


def token_logprobs(model, ids: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: log-probs of each next token from the full HF forward (all logits at once), aligned with
    `ids` (the first position, which nothing predicts, is 0), and the entropies there."""
    logp_all = torch.log_softmax(model(input_ids=ids).logits[:, :-1].float() / temperature, -1)
    logp = logp_all.gather(-1, ids[:, 1:, None])[..., 0]
    entropy = -(logp_all.exp() * logp_all).sum(-1).detach()
    pad = torch.zeros((ids.shape[0], 1))
    return torch.cat([pad, logp], 1), torch.cat([pad, entropy], 1)


def rl_cfg(**kw) -> RLConfig:
    base = dict(steps=2, prompts_per_step=2, group_size=4, max_new_tokens=8, mini_batch_groups=1, lr=1e-2)
    return RLConfig(**(base | kw))


def fixed_groups(model, tok, task, good: str, bad: str) -> list[Group]:
    """Two responses per group: `good` rewarded +1, `bad` -1, with their log-probs under `model`."""
    prompt = chat_prompt_ids(tok, task.question)
    groups = []
    for _ in range(2):
        rollouts = []
        for text in (good, bad, good, bad):
            response = tok(text).input_ids + [tok.eos_token_id]
            with torch.no_grad():
                logp, _ = token_logprobs(model, torch.tensor([prompt + response]), 1.0)
            rollouts.append(Rollout(prompt, response, logp[0, len(prompt) :].tolist(), False))
        groups.append(Group(task, rollouts, [1.0, 0.0, 1.0, 0.0], [1.0, -1.0, 1.0, -1.0], [good, bad, good, bad]))
    return groups


def test_pick_tasks_follows_domain_weights():
    cfg = rl_cfg(domains=["math", "logic"], domain_weights={"logic": 0.0})
    pools = task_pools(cfg, (1,), 0)
    assert {t.domain for t in pick_tasks(pools, cfg, 50, random.Random(0))} == {"math"}


def test_pack_masks_responses_and_normalises_in_groups(model_and_tok):
    model, tok = model_and_tok
    task = RLPrompt("tiny/math", "math", "Compute 12 + 34.", "46")
    groups = fixed_groups(model, tok, task, "Answer: 4", "no")
    groups[0].rollouts[1].truncated = True
    batch = pack(groups, tok.pad_token_id, mask_truncated=True)
    r = groups[0].rollouts[0]
    p, n = len(r.prompt_ids), len(r.response_ids)
    assert batch["mask"][0, :p].sum() == 0 and batch["mask"][0, p : p + n].sum() == n
    assert batch["mask"][1].sum() == 0  # the truncated response is masked out
    assert batch["adv"][:4].tolist() == pytest.approx([0.866, -0.866, 0.866, -0.866], abs=1e-3)
    assert batch["old_logp"][0, p : p + n].tolist() == pytest.approx(r.logprobs)


def test_sampler_logprobs_are_the_old_policy(model_and_tok):
    """pack() takes PPO's old log-probs from the sampler: they equal a fresh forward of the packed batch."""
    model, tok = model_and_tok
    cfg = rl_cfg(max_gen_rounds=1, dynamic_sampling=False)
    groups, _, _ = collect_batch(model, tok, task_pools(cfg, (1,), 0), cfg, step=0, seed=0)
    batch = pack(groups, tok.pad_token_id, False)
    with torch.no_grad():
        fresh, _ = token_logprobs(model, batch["ids"], cfg.temperature)
    m = batch["mask"] > 0
    assert torch.allclose(batch["old_logp"][m], fresh[m], atol=1e-4)


def test_update_moves_probability_towards_rewarded_responses(model_and_tok):
    model, tok = model_and_tok
    task = RLPrompt("tiny/math", "math", "Compute 12 + 34.", "46")
    groups = fixed_groups(model, tok, task, "Answer: \\boxed{46}", "Who is the tallest")
    batch = pack(groups, tok.pad_token_id, False)

    def mean_logp(row):
        with torch.no_grad():
            logp, _ = token_logprobs(model, batch["ids"][row : row + 1], 1.0)
        return float((logp * batch["mask"][row : row + 1]).sum())

    before_good, before_bad = mean_logp(0), mean_logp(1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        stats = update(model, None, optimizer, batch, 4, rl_cfg(), torch.Generator().manual_seed(0))
    assert mean_logp(0) > before_good and mean_logp(1) < before_bad
    assert {"loss", "clip_frac", "entropy", "ppo_kl", "grad_norm"} <= set(stats)


LOSSES_AGGS_AND_KL = [("dapo", "token-mean", 0.0), ("dapo", "seq-mean-token-mean", 0.0),
                      ("dapo", "seq-mean-token-sum", 0.0), ("dapo", "token-mean", 0.5), ("grpo", None, 0.5),
                      ("dr_grpo", None, 0.0), ("gspo", None, 0.0), ("cispo", None, 0.0)]  # fmt: skip


@pytest.mark.parametrize("loss_name, agg, kl_coef", LOSSES_AGGS_AND_KL)
def test_shared_prompt_micro_batches_give_the_full_batch_update(model_and_tok, loss_name, agg, kl_coef):
    """Packing each prompt once with its responses (in micro-batches of any size) changes nothing: the update
    equals one step on the loss of the whole right-padded batch (with its KL term to a reference model), for
    every policy loss (None: the loss's own aggregation)."""
    model, tok = model_and_tok
    math = RLPrompt("tiny/math", "math", "Compute 12 + 34.", "46")
    logic = RLPrompt("tiny/logic", "logic", "Who is the tallest?", "Ann")
    groups = fixed_groups(model, tok, math, "Answer: \\boxed{46}", "Who is the tallest? Ann Ann Ann Ann")[:1]
    groups += fixed_groups(model, tok, logic, "Ann", "Compute 12 + 34.\nSubgoal: add the ones.")[:1]
    groups[1].rollouts[2].truncated = True  # a response with nothing in the loss
    cfg = rl_cfg(mini_batch_groups=2, loss=loss_name, kl_coef=kl_coef, **({"loss_agg": agg} if agg else {}))
    if loss_name == "gspo":
        cfg = cfg.model_copy(update={"clip_low": 0.02, "clip_high": 0.03})  # some sequence ratios clip
    batch = pack(groups, tok.pad_token_id, mask_truncated=True, norm_by_std=cfg.norm_adv_by_std)
    batch["old_logp"] = batch["old_logp"] + 0.05 * torch.randn(batch["old_logp"].shape)  # some ratios clip
    ref_model = copy.deepcopy(model)
    with torch.no_grad():
        for p in ref_model.parameters():
            p.add_(0.05 * torch.randn(p.shape))
        ref_logp, _ = token_logprobs(ref_model, batch["ids"], cfg.temperature)

    reference = copy.deepcopy(model)
    logp, _ = token_logprobs(reference, batch["ids"], cfg.temperature)
    loss, _ = objective(cfg.loss, logp, batch["old_logp"], batch["adv"], batch["mask"], loss_settings(cfg))
    kl = agg_loss(kl_penalty(logp, ref_logp, cfg.kl_estimator), batch["mask"], cfg.loss_agg, cfg.max_new_tokens)
    loss = loss + kl_coef * kl
    loss.backward()
    torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
    torch.optim.SGD(reference.parameters(), lr=1.0).step()
    expected = torch.cat([p.flatten() for p in reference.parameters()])
    assert not torch.equal(expected, torch.cat([p.flatten() for p in model.parameters()]))
    for rows, checkpointing in ((8, False), (3, False), (1, False), (3, True)):
        m = copy.deepcopy(model)
        set_checkpointing(m, checkpointing)  # recomputed in the backward, with the same packed attention
        m.train(checkpointing)
        cfg_rows = cfg.model_copy(update={"micro_batch_rows": rows})
        optimizer = torch.optim.SGD(m.parameters(), lr=1.0)
        update(m, ref_model, optimizer, batch, 4, cfg_rows, torch.Generator().manual_seed(0))
        torch.testing.assert_close(torch.cat([p.flatten() for p in m.parameters()]), expected, atol=1e-6, rtol=1e-5)


def test_a_group_whose_responses_have_different_prompts_is_refused(model_and_tok):
    model, tok = model_and_tok
    groups = fixed_groups(model, tok, RLPrompt("tiny/math", "math", "Compute 12 + 34.", "46"), "46", "no")[:1]
    other = fixed_groups(model, tok, RLPrompt("tiny/math", "math", "Compute 1 + 2.", "3"), "3", "no")[0]
    groups[0].rollouts[3] = other.rollouts[3]
    batch = pack(groups, tok.pad_token_id, False)
    with pytest.raises(ValueError, match="do not share one prompt"):
        update(model, None, torch.optim.SGD(model.parameters(), lr=1.0), batch, 4, rl_cfg(), torch.Generator())


def test_dynamic_sampling_drops_uniform_groups_and_bounds_rounds(model_and_tok):
    model, tok = model_and_tok  # an untrained model never answers right: every group is all-wrong
    cfg = rl_cfg(max_gen_rounds=3)
    kept, sampled, rounds = collect_batch(model, tok, task_pools(cfg, (1,), 0), cfg, step=0, seed=0)
    assert kept == [] and rounds == 3 and len(sampled) == 3 * cfg.prompts_per_step
    kept, sampled, rounds = collect_batch(
        model, tok, task_pools(cfg, (1,), 0), rl_cfg(dynamic_sampling=False), step=0, seed=0
    )
    assert len(kept) == len(sampled) == 2 and rounds == 1


def test_streaming_replaces_dropped_groups_within_the_same_budget(model_and_tok):
    """Every all-wrong group is replaced by the next round's, until max_gen_rounds rounds of groups are spent;
    the groups are the rounds' own draws, each verified once."""
    model, tok = model_and_tok
    cfg = rl_cfg(max_gen_rounds=3, streaming=True, rollout_batch_size=6)  # room for one group and a half
    pools = task_pools(cfg, (1,), 0)
    kept, sampled, rounds = collect_streaming(model, tok, pools, cfg, step=0, seed=0)
    assert kept == [] and rounds == 3 and len(sampled) == 3 * cfg.prompts_per_step
    _, by_rounds, _ = collect_batch(model, tok, pools, cfg, step=0, seed=0)
    assert sorted(g.task.question for g in sampled) == sorted(g.task.question for g in by_rounds)
    assert all(len(g.rollouts) == cfg.group_size == len(g.scores) for g in sampled)


def test_train_rl_streams_and_logs(model_and_tok, tmp_path):
    model, tok = model_and_tok
    cfg = rl_cfg(steps=1, streaming=True, max_gen_rounds=2)
    train_rl(model, tok, cfg, task_pools(cfg, (1,), 0), tmp_path, 0, "rl")
    row = read_metrics(tmp_path / "metrics.jsonl")[-1]
    assert row["groups_sampled"] == 4 and row["gen_rounds"] == 2 and row["sample_s"] > 0


def test_train_rl_logs_and_resumes(model_and_tok, tmp_path):
    model, tok = model_and_tok
    cfg = rl_cfg(steps=2, save_every=1, dynamic_sampling=False)
    train_rl(model, tok, cfg, task_pools(cfg, (1,), 0), tmp_path, 0, "rl")
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("reward", "acc", "entropy", "response_length", "clip_frac", "dropped_share", "skill_verification"):
        assert key in rows[-1]
    assert (tmp_path / "last").is_dir()  # step 1's checkpoint; a resumed run continues from it
    cfg = rl_cfg(steps=3, save_every=1, dynamic_sampling=False)
    train_rl(model, tok, cfg, task_pools(cfg, (1,), 0), tmp_path, 0, "rl")
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3]


def test_train_rl_measures_a_learning_curve_and_resumes_it(model_and_tok, tmp_path):
    model, tok = model_and_tok
    run = RunConfig(
        stages=[], eval=EvalConfig(domains=["math", "logic"], max_new_tokens=8), world=WorldConfig(heldout_per_domain=6)
    )

    def train(steps: int) -> None:
        cfg = rl_cfg(steps=steps, save_every=1, dynamic_sampling=False, eval_every=2, eval_tasks=3, eval_samples=2)
        curve_for = lambda start: LearningCurve(run, cfg, tmp_path, start)  # noqa: E731
        train_rl(model, tok, cfg, task_pools(cfg, (1,), 0), tmp_path, 0, "rl", curve_for=curve_for)

    train(3)
    points = read_curve(tmp_path)
    assert [p["step"] for p in points] == [0, 2, 3]  # before the first step, every 2 steps, after the last
    assert all(set(p["domains"]) == {"math", "logic"} and p["domains"]["math"]["n"] == 3 for p in points)
    assert {"greedy", "greedy_ci95", "format", "mean@2"} <= set(points[-1]["domains"]["logic"])
    assert points[0]["train_s"] == 0 < points[1]["train_s"] <= points[2]["train_s"]
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2, 3] and "reward" not in rows[0]
    assert rows[2]["heldout_math"] == points[1]["domains"]["math"]["greedy"] and "heldout_math" not in rows[1]
    assert "heldout_logic_mean@2" in rows[3]

    train(5)  # resumes from step 2's checkpoint, as after a kill in step 3: step 3's point is dropped, none twice
    assert [p["step"] for p in read_curve(tmp_path)] == [0, 2, 4, 5]
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0, 1, 2, 3, 4, 5]


def test_step_metrics_tell_all_right_groups_from_all_wrong_ones():
    task = RLPrompt("tiny/math", "math", "Compute 1 + 1.", "2")

    def group(scores: list[float]) -> Group:
        rollouts = [Rollout([1], [2, 3], [-0.1, -0.2], False) for _ in scores]
        return Group(task, rollouts, scores, [2 * s - 1 for s in scores], ["\\boxed{2}"] * len(scores))

    sampled = [group([1.0, 1.0]), group([0.0, 0.0]), group([0.0, 0.0]), group([1.0, 0.0])]
    metrics = step_metrics(sampled[3:], sampled, rounds=1)
    assert metrics["dropped_share"] == 0.75 and metrics["all_right_share"] == 0.25 and metrics["groups_kept"] == 1

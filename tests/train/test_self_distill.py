"""Rejection-sampled self-distillation: which of the model's own responses become SFT rows."""

import pytest

from mathfirst.train.self_distill import select_verified

PLAIN = "7 + 9 = 16\nAnswer: \\boxed{16}"
CHECKED = "Subgoal: add.\n7 + 9 = 16\nCheck: 16 - 9 = 7\nAnswer: \\boxed{16}"
BACKTRACKED = "7 + 9 = 15\nWait, 7 + 9 is not 15. Redo: 7 + 9 = 16\nAnswer: \\boxed{16}"


def test_keeps_verified_untruncated_distinct_responses_skill_richest_first():
    texts = [PLAIN, "Answer: \\boxed{15}", CHECKED, CHECKED, "7 + 9 = 16 and then", PLAIN, PLAIN, PLAIN]
    scores = [1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    truncated = [False, False, False, False, True, False, False, False]
    rows = select_verified(["q1", "q2"], texts, scores, truncated, per_prompt=2)
    assert rows == [{"prompt": "q1", "response": CHECKED}, {"prompt": "q1", "response": PLAIN}]  # q2: none right


def test_per_prompt_keeps_the_ones_that_verify_or_backtrack():
    texts = [PLAIN, BACKTRACKED, CHECKED]
    rows = select_verified(["q"], texts, [1.0, 1.0, 1.0], [False] * 3, per_prompt=1)
    assert rows[0]["response"] in (BACKTRACKED, CHECKED) and len(rows) == 1


def test_self_distilled_rows_are_written_once_and_read_back_on_resume(tmp_path):
    from mathfirst.config import ModelConfig, RunConfig, SelfDistillConfig
    from mathfirst.model import build_tiny_model
    from mathfirst.tokenizer import train_tokenizer
    from mathfirst.train.self_distill import FILE, self_distilled_pairs

    tok = train_tokenizer(["Compute 12 + 34.\nAnswer: \\boxed{46}"] * 20, 400)
    model = build_tiny_model(ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1), tok, 0).eval()
    sd = SelfDistillConfig(prompts=4, samples=2, max_new_tokens=16)
    cfg = RunConfig(stages=[])
    rows = self_distilled_pairs(model, tok, cfg, sd, tmp_path)
    assert (tmp_path / FILE).is_file() and len(rows) <= 4  # an untrained model keeps (almost) nothing
    (tmp_path / FILE).write_text('{"prompt": "q", "response": "r"}\n')
    assert self_distilled_pairs(model, tok, RunConfig(stages=[]), sd, tmp_path) == [
        ("q", "r")
    ]  # a resumed stage reuses it


def test_an_export_refuses_self_distillation_instead_of_dropping_it(tmp_path):
    from mathfirst.config import DEFAULT_CONFIG, ConfigError, SelfDistillConfig, load_config
    from mathfirst.verl.export import export_verl

    cfg = load_config(DEFAULT_CONFIG.parent / "smoke.yaml")
    cfg.sft.optimizer, cfg.sft.self_distill = "adamw", SelfDistillConfig()
    with pytest.raises(ConfigError, match="sft.self_distill samples from the model"):
        export_verl(cfg, tmp_path)

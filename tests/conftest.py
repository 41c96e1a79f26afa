"""Fixtures shared by the tests of every folder below (tests/rl/ and tests/sampling/ use them)."""

import pytest

from mathfirst.config import ModelConfig
from mathfirst.model import build_tiny_model
from mathfirst.tokenizer import train_tokenizer

CORPUS = ["Compute 12 + 34.\nSubgoal: add the ones.\nAnswer: \\boxed{46}"] * 20 + ["Who is the tallest? Ann"] * 5


@pytest.fixture()
def model_and_tok():
    """A 2-layer Llama with a tokenizer trained on a math trace and a logic answer."""
    tok = train_tokenizer(CORPUS, 400)
    cfg = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)
    return build_tiny_model(cfg, tok, 0).eval(), tok

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import mathfirst.rl.logprobs as logprobs
from mathfirst.rl.logprobs import ChunkLogprobs, head_logprobs


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("keep", [False, True])
def test_chunk_logprobs_equal_log_softmax_and_its_gradient(temperature, bias, keep):
    """Target log-probs, entropies and the gradients of hidden states, weight and bias equal autograd's through
    a plain log_softmax, whether the softmax is kept for the backward or recomputed."""
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=bias).double()
    hidden = torch.randn(37, 16, dtype=torch.float64, requires_grad=True)
    targets, weights = torch.randint(50, (37,)), torch.randn(37, dtype=torch.float64)
    params = [hidden, head.weight] + ([head.bias] if bias else [])

    logp, entropy = ChunkLogprobs.apply(hidden, head.weight, head.bias, targets, temperature, torch.float64, keep)
    ref_all = torch.log_softmax(head(hidden) / temperature, -1)
    ref = ref_all.gather(-1, targets[:, None])[:, 0]
    torch.testing.assert_close(logp, ref)
    torch.testing.assert_close(entropy, -(ref_all.exp() * ref_all).sum(-1))
    assert not entropy.requires_grad
    grads = torch.autograd.grad((logp * weights).sum(), params)
    for got, want in zip(grads, torch.autograd.grad((ref * weights).sum(), params)):
        torch.testing.assert_close(got, want)


def test_head_logprobs_over_chunks_equal_the_models_own_logits(monkeypatch):
    """Across chunk borders, with the softmax kept or not, the log-probs and the gradient of every weight equal
    those from the model's full logits; a head the function cannot apply is refused."""
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)  # fmt: skip
    model = LlamaForCausalLM(cfg).double()
    ids = torch.randint(64, (2, 9))
    full = torch.log_softmax(model(ids).logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0].flatten()
    want = torch.autograd.grad(full.sum(), list(model.parameters()))
    monkeypatch.setattr(logprobs, "LOGITS_CHUNK", 5)
    for kept_bytes in (0, 2**20):
        monkeypatch.setattr(logprobs, "KEPT_LOGITS_BYTES", kept_bytes)
        hidden = model.model(ids).last_hidden_state[:, :-1].flatten(0, 1)
        logp, _ = head_logprobs(model, hidden, ids[:, 1:].flatten())
        torch.testing.assert_close(logp, full)
        for got, expected in zip(torch.autograd.grad(logp.sum(), list(model.parameters())), want):
            torch.testing.assert_close(got, expected)
    model.lm_head = torch.nn.Sequential(model.lm_head)
    with pytest.raises(ValueError, match="only a plain Linear"):
        head_logprobs(model, hidden, ids[:, 1:].flatten())

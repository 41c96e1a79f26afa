import pytest
import torch

from mathfirst.config import ModelConfig, TrainConfig
from mathfirst.model import build_tiny_model
from mathfirst.tokenizer import train_tokenizer
from mathfirst.train.optim import MuonAdamW, hidden_matrices, make_optimizer, orthogonalize


def test_orthogonalize_flattens_the_singular_values_of_each_matrix_in_a_stack():
    torch.manual_seed(0)
    stack = torch.randn(3, 48, 16) @ torch.diag(torch.logspace(-1, 1, 16))  # singular values over two decades
    out = orthogonalize(stack)
    s = torch.linalg.svdvals(out)
    assert s.min() > 0.5 and s.max() < 1.5  # Muon's quintic lands each in about [0.7, 1.2], not exactly 1
    assert torch.allclose(out[1], orthogonalize(stack[1:2])[0], atol=1e-5)  # the stack is a batch, not a mix
    assert orthogonalize(stack.mT).shape == (3, 16, 48)


def steps_of(make, param: torch.Tensor, grads: list[torch.Tensor]) -> torch.Tensor:
    p = torch.nn.Parameter(param.clone())
    opt = make([p])
    for grad in grads:
        p.grad = grad.clone()
        opt.step()
    return p.detach()


@pytest.mark.parametrize("shape", [(32, 8), (8, 32)])
def test_muon_groups_step_like_torch_muon_matched_to_adamw(shape):
    torch.manual_seed(0)
    w, grads = torch.randn(shape), [torch.randn(shape) for _ in range(3)]
    ours = steps_of(lambda ps: MuonAdamW([dict(params=ps, muon=True)], lr=0.02, weight_decay=0.1), w, grads)
    theirs = steps_of(
        lambda ps: torch.optim.Muon(ps, lr=0.02, weight_decay=0.1, adjust_lr_fn="match_rms_adamw"), w, grads
    )
    moved = (theirs - w).abs().mean()
    assert (ours - theirs).abs().mean() < 0.02 * moved  # torch orthogonalizes in bf16, we in fp32


def test_other_groups_step_like_torch_adamw():
    torch.manual_seed(0)
    w, grads = torch.randn(10), [torch.randn(10) for _ in range(5)]
    ours = steps_of(lambda ps: MuonAdamW([dict(params=ps, muon=False)], lr=0.01, weight_decay=0.1), w, grads)
    theirs = steps_of(lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, betas=(0.9, 0.95)), w, grads)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_muon_takes_the_hidden_matrices_and_adamw_the_embeddings_and_norms():
    tok = train_tokenizer(["a b c 1 2 3"] * 4, 300)
    model = build_tiny_model(ModelConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1), tok, 0)
    cfg = TrainConfig(steps=1, examples=1, optimizer="muon")
    muon, rest = make_optimizer(model, cfg).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in muon["params"]} == {
        n for n, p in model.named_parameters() if p.ndim == 2 and "layers." in n
    }
    assert "model.embed_tokens.weight" in {names[id(p)] for p in rest["params"]}  # tied to the output head
    assert len(hidden_matrices(model)) == 2 * 7  # q, k, v, o, gate, up, down per layer
    assert isinstance(make_optimizer(model, TrainConfig(steps=1, examples=1)), torch.optim.AdamW)


def test_no_embedding_table_goes_to_muon_in_other_architectures():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2))
    hidden = {id(p) for p in hidden_matrices(model)}
    names = {n for n, p in model.named_parameters() if id(p) in hidden}
    assert "transformer.wpe.weight" not in names and "transformer.wte.weight" not in names  # position table too
    assert "transformer.h.0.attn.c_attn.weight" in names

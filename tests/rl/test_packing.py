import torch
import torch.nn.functional as F

from mathfirst.rl.packing import packed_attention


def test_packed_attention_equals_the_dense_mask_on_every_real_token():
    """Two packed sequences (a prompt, then responses; the second padded), grouped-query heads: the attention
    of every prompt and response token equals SDPA under the dense packed mask, padding comes out as zeros, and
    so do the gradients of q, k and v."""
    torch.manual_seed(0)
    width, segments = 14, [(3, [(3, 7), (7, 14)]), (2, [(2, 5), (5, 9)])]
    q = torch.randn(2, 4, width, 8, dtype=torch.float64, requires_grad=True)
    k, v = (torch.randn(2, 2, width, 8, dtype=torch.float64, requires_grad=True) for _ in range(2))
    allowed = torch.zeros(2, width, width, dtype=torch.bool)
    real = torch.zeros(2, width, dtype=torch.bool)
    for b, (prompt, spans) in enumerate(segments):
        allowed[b, :prompt, :prompt] = torch.ones(prompt, prompt, dtype=torch.bool).tril()
        real[b, : spans[-1][1]] = True
        for start, end in spans:
            allowed[b, start:end, :prompt] = True
            allowed[b, start:end, start:end] = torch.ones(end - start, end - start, dtype=torch.bool).tril()
    allowed |= torch.eye(width, dtype=torch.bool)  # padding rows see themselves (as pack_chunks builds it)
    dense = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None], enable_gqa=True).transpose(1, 2)
    packed, _ = packed_attention(None, q, k, v, None, packed_segments=segments)
    torch.testing.assert_close(packed[real], dense[real])
    assert (packed[~real] == 0).all()
    weights = torch.randn(dense[real].shape, dtype=torch.float64)
    want = torch.autograd.grad((dense[real] * weights).sum(), (q, k, v))
    for got, expected in zip(torch.autograd.grad((packed[real] * weights).sum(), (q, k, v)), want):
        torch.testing.assert_close(got, expected)

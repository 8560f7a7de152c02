import math

import torch
import torch.nn.functional as F

from hallo_pipeline.hallo.models.attention import Attention, sdpa, timestep_embedding, use_attention_kernel


def test_timestep_embedding_matches_diffusers() -> None:
    from diffusers.models.embeddings import get_timestep_embedding

    t = torch.tensor([0, 1, 24, 333, 666, 999])
    for flip, shift in ((True, 0), (False, 1)):
        ours = timestep_embedding(t, 320, flip_sin_to_cos=flip, freq_shift=shift)
        theirs = get_timestep_embedding(t, 320, flip_sin_to_cos=flip, downscale_freq_shift=shift)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_attention_is_multi_head_softmax_attention() -> None:
    torch.manual_seed(0)
    attn = Attention(16, heads=4, context_dim=6)
    x, ctx = torch.randn(2, 5, 16), torch.randn(2, 3, 6)
    q, k, v = attn.to_q(x), attn.to_k(ctx), attn.to_v(ctx)
    heads = []
    for h in range(4):
        sl = slice(4 * h, 4 * h + 4)
        w = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(4), dim=-1)
        heads.append(w @ v[..., sl])
    expected = attn.to_out[0](torch.cat(heads, dim=-1))
    torch.testing.assert_close(attn(x, ctx), expected, rtol=0, atol=1e-6)


def test_the_kernel_sees_heads_before_sequence() -> None:
    seen = []

    def kernel(q, k, v):
        seen.append((q.shape, k.shape))
        return F.scaled_dot_product_attention(q, k, v)

    torch.manual_seed(0)
    attn = Attention(16, heads=4, context_dim=6)
    x, ctx = torch.randn(2, 5, 16), torch.randn(2, 3, 6)
    expected = attn(x, ctx)
    attn.kernel = kernel
    torch.testing.assert_close(attn(x, ctx), expected, rtol=0, atol=0)
    assert seen == [((2, 4, 5, 4), (2, 4, 3, 4))]  # (N, heads, L, head_dim)


def test_use_attention_kernel_reaches_every_attention_of_the_net() -> None:
    from hallo_pipeline.hallo.models.motion_module import TemporalAttention
    from tests.hallo_pipeline.hallo.tiny import random_net

    net = random_net()
    attentions = [m for m in net.modules() if isinstance(m, Attention)]
    assert all(m.kernel is sdpa for m in attentions)
    assert any(isinstance(m, TemporalAttention) for m in attentions)

    def kernel(q, k, v):
        return F.scaled_dot_product_attention(q, k, v)

    use_attention_kernel(net, kernel)
    assert all(m.kernel is kernel for m in attentions)

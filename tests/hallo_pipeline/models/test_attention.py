import math

import torch

from hallo_pipeline.models.attention import Attention, timestep_embedding


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

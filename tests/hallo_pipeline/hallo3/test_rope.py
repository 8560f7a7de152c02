"""The 3D RoPE: table layout and the properties attention relies on."""

from __future__ import annotations

import torch

from hallo_pipeline.hallo3.rope import apply_rope, rope_angles, rotate_pairs


def test_rotate_pairs_turns_each_pair_a_quarter() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert rotate_pairs(x).tolist() == [-2.0, 1.0, -4.0, 3.0]


def test_table_rows_are_frame_major_and_split_t_h_w() -> None:
    frames, rows, cols, dims = 3, 2, 4, (4, 6, 6)
    angles = rope_angles(frames, rows, cols, dims)
    assert angles.shape == (frames * rows * cols, sum(dims))
    token = (2 * rows + 1) * cols + 3  # frame 2, row 1, column 3
    t, h, w = angles[token].split(dims)
    assert t[0] == 2 and h[0] == 1 and w[0] == 3  # the first frequency is 1 on every axis
    # Each angle appears twice in a row (interleaved pairs).
    assert torch.equal(t[0::2], t[1::2]) and torch.equal(w[0::2], w[1::2])


def test_scores_depend_only_on_relative_positions() -> None:
    torch.manual_seed(0)
    dims = (4, 6, 6)
    angles = rope_angles(6, 3, 3, dims).double()
    cos, sin = angles.cos(), angles.sin()
    q, k = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    rq, rk = apply_rope(q.expand(len(angles), -1), cos, sin), apply_rope(k.expand(len(angles), -1), cos, sin)

    def index(t, h, w):
        return (t * 3 + h) * 3 + w

    # Both pairs are (+1 frame, -1 row, +1 column) apart; a third pair at another offset scores differently.
    a = rq[index(1, 0, 2)] @ rk[index(0, 1, 1)]
    b = rq[index(4, 1, 2)] @ rk[index(3, 2, 1)]
    c = rq[index(4, 1, 2)] @ rk[index(3, 2, 2)]
    torch.testing.assert_close(a, b)
    assert not torch.isclose(a, c)
    assert torch.allclose(rq.norm(dim=-1), q.norm().expand(len(angles)))

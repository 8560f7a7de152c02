import pytest
import torch

from hallo_pipeline.hallo.models.motion_module import MotionModule, sinusoidal_positions


def test_position_table_is_what_the_release_stored(parity_path) -> None:
    """The stored `pe` buffers are these sinusoids rounded to float16."""
    from safetensors import safe_open

    with safe_open(str(parity_path / "models" / "net.safetensors"), "pt") as f:
        names = [k for k in f.keys() if k.endswith("pos_encoder.pe")]
        assert names
        for name in names:
            stored = f.get_tensor(name)
            assert torch.equal(sinusoidal_positions(stored.shape[1], stored.shape[2]).half(), stored), name


def _module(seed: int = 0) -> MotionModule:
    torch.manual_seed(seed)
    m = MotionModule(channels=32, heads=4, max_len=8, num_attention_blocks=2, groups=32)
    for p in m.parameters():  # proj_out is zero-initialised in the release: make it matter here
        torch.nn.init.normal_(p, 0.0, 0.2)
    return m.eval().requires_grad_(False)


def test_motion_module_mixes_time_not_space() -> None:
    m = _module()
    frames = 4
    x = torch.randn(2 * frames, 32, 3, 3)
    base = m(x, frames)
    # Every step but the per-frame GroupNorm works pixel by pixel, and GroupNorm statistics do not
    # depend on where a pixel is: shuffling pixels commutes with the module.
    perm = torch.randperm(9)
    shuffled = x.flatten(2)[:, :, perm].reshape(x.shape)
    torch.testing.assert_close(m(shuffled, frames), base.flatten(2)[:, :, perm].reshape(x.shape))
    # ... while an edit of one frame reaches the other frames of the same clip, not the other clip.
    y = x.clone()
    y[1] += torch.randn_like(y[1])  # a constant would vanish in the GroupNorm
    delta = (m(y, frames) - base).abs().flatten(1).amax(dim=1)
    assert (delta[[0, 2, 3]] > 1e-4).all()
    assert (delta[frames:] == 0).all()


def test_too_many_frames_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="position table holds 8"):
        _module()(torch.randn(9, 32, 2, 2), 9)

"""Audio features: framing, padding, windows, chunked CNN, layer outputs, Hallo2 chunks, bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from hallo_pipeline.audio.features import (
    AudioEncoder,
    frame_count,
    normalize_waveform,
    padded_frame_count,
)
from hallo_pipeline.audio.wav2vec import cnn_features, cnn_output_length
from hallo_pipeline.errors import CheckpointError, InputError


def speechlike(seconds: float, rate: int = 16000, noise: float = 0.02, seed: int = 0) -> np.ndarray:
    """A 220 Hz tone with a 3 Hz syllable-like envelope, plus optional noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.2 * envelope * np.sin(2 * np.pi * 220 * t) + noise * rng.standard_normal(t.size)).astype(np.float32)


def test_frame_count_covers_the_audio() -> None:
    for samples in range(1, 200_000, 37):
        exact = -(-samples // 640)
        frames = frame_count(samples)
        # The release's float arithmetic adds a frame at a few exact multiples of 640; never elsewhere.
        assert frames == exact or (samples % 640 == 0 and frames == exact + 1)
    assert frame_count(4480) == math.ceil(4480 / 16000 * 25)


@pytest.mark.parametrize("frames, clip", [(33, 4), (32, 4), (1, 16), (17, 16), (48, 16)])
def test_padding_to_whole_clips(frames: int, clip: int) -> None:
    padded = padded_frame_count(frames, clip)
    assert padded % clip == 0 and frames <= padded < frames + clip


def test_normalisation() -> None:
    x = speechlike(1.0) * 3 + 0.7
    y = normalize_waveform(x)
    assert abs(float(y.mean())) < 1e-5 and abs(float(y.var()) - 1) < 1e-4
    constant = normalize_waveform(np.full(100, 0.3, np.float32))  # eps keeps it finite (and about zero)
    assert np.isfinite(constant).all() and np.abs(constant).max() < 1e-3


@pytest.mark.parametrize("chunk_frames", [1, 7, 50])
def test_chunked_cnn_equals_the_whole_module(encoder, chunk_frames: int) -> None:
    values = torch.from_numpy(normalize_waveform(speechlike(1.3)))
    whole = encoder.model.feature_extractor(values[None])[0]
    chunked = cnn_features(encoder.model.feature_extractor, values, chunk_frames)
    assert (
        chunked.shape
        == whole.shape
        == (whole.shape[0], cnn_output_length(encoder.model.feature_extractor, values.numel()))
    )
    assert torch.allclose(chunked, whole, atol=1e-5, rtol=0)


def test_chunked_cnn_of_layer_norm_variant(stable_wav2vec_dir) -> None:
    model = AudioEncoder(stable_wav2vec_dir).model
    values = torch.from_numpy(normalize_waveform(speechlike(0.7)))
    assert torch.allclose(
        cnn_features(model.feature_extractor, values, 5), model.feature_extractor(values[None])[0], atol=1e-5
    )


def test_cnn_memory_is_bounded_by_the_chunk(encoder) -> None:
    """However long the audio, no conv call sees more than one chunk's samples."""
    seen = []
    first_conv = encoder.model.feature_extractor.conv_layers[0].conv
    handle = first_conv.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-1]))
    try:
        cnn_features(encoder.model.feature_extractor, torch.zeros(16000 * 20), chunk_frames=50)
    finally:
        handle.remove()
    assert max(seen) <= 49 * 320 + 400


@pytest.mark.parametrize("fixture", ["wav2vec_dir", "stable_wav2vec_dir"])
def test_layer_outputs_equal_transformers_hidden_states(fixture, request) -> None:
    """With no resampling between CNN and transformer (same frame count), our layer loop gives
    transformers' own layer outputs. The last one is the model's final output: for the pre-norm
    variant that is the normalised one, which is what `hidden_states[-1]` holds in the
    transformers 4.x the release used (5.x keeps the raw one there)."""
    enc = AudioEncoder(request.getfixturevalue(fixture))
    values = normalize_waveform(speechlike(0.9))
    cnn = enc.cnn_features(values)
    ours = enc.layer_outputs(enc.interpolate(cnn, cnn.shape[-1]))
    with torch.no_grad():
        result = enc.model(torch.from_numpy(values)[None], output_hidden_states=True)
    theirs = [*result.hidden_states[1:-1], result.last_hidden_state]
    assert len(result.hidden_states) == enc.layers + 1
    assert torch.allclose(ours, torch.stack(theirs, dim=2)[0], atol=2e-5, rtol=0)


@pytest.mark.parametrize("seconds, clip", [(0.04, 16), (1.0, 16), (1.3, 4), (2.0, 5)])
def test_encode_shapes_and_windows(encoder, seconds: float, clip: int) -> None:
    audio = speechlike(seconds)
    out = encoder.encode(audio, 16000, clip_length=clip)
    frames = frame_count(audio.size)
    assert (out.frames, out.padded_frames) == (frames, padded_frame_count(frames, clip))
    assert out.hidden_states.shape == (out.padded_frames, encoder.layers, encoder.hidden_size)
    assert out.features.shape == (out.padded_frames, 5, encoder.layers, encoder.hidden_size)
    index = (torch.arange(out.padded_frames)[:, None] + torch.arange(-2, 3)).clamp(0, out.padded_frames - 1)
    assert torch.equal(out.features, out.hidden_states[index])
    assert torch.equal(out.clip(0, clip), out.features[:clip]) and out.clip(0, clip).is_contiguous()
    with pytest.raises(IndexError):
        out.clip(out.padded_frames // clip, clip)


def test_encode_accepts_any_rate_and_channels(encoder) -> None:
    mono16 = speechlike(1.0, noise=0)
    stereo48 = np.stack([speechlike(1.0, 48000, noise=0), speechlike(1.0, 48000, noise=0)])
    a = encoder.encode(mono16, 16000)
    b = encoder.encode(torch.from_numpy(stereo48)[None], 48000)
    assert (a.frames, a.padded_frames) == (b.frames, b.padded_frames)
    assert b.waveform.shape == (16000,) and b.sample_rate == 16000
    # Same tone, resampled: the features agree closely, not exactly.
    assert torch.corrcoef(torch.stack([a.hidden_states.flatten(), b.hidden_states.flatten()]))[0, 1] > 0.99


def test_encoding_draws_no_random_numbers(encoder) -> None:
    audio = speechlike(0.5)
    torch.manual_seed(1)
    state = torch.get_rng_state()
    first = encoder.encode(audio, 16000)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(2)
    assert torch.equal(encoder.encode(audio, 16000).features, first.features)


def test_hallo2_chunks_restart_context_and_pad_only_the_last(encoder) -> None:
    chunk_seconds, clip = 0.4, 4  # 10 frames per chunk
    audio = speechlike(1.3)
    out = encoder.encode(audio, 16000, clip_length=clip, chunk_seconds=chunk_seconds)
    frames = frame_count(audio.size)
    assert (out.frames, out.padded_frames) == (frames, padded_frame_count(frames, clip))
    size = int(chunk_seconds * 16000)
    # A full chunk is encoded exactly as if it were the whole audio (own normalisation, no context).
    for k in range(2):
        alone = encoder.encode(audio[k * size : (k + 1) * size], 16000, clip_length=1)
        assert torch.allclose(out.hidden_states[10 * k : 10 * (k + 1)], alone.hidden_states, atol=1e-6)
    # The last chunk carries the padding of the whole sequence.
    last = audio[3 * size :]
    values = np.concatenate([encoder.input_values(last), np.zeros((out.padded_frames - frames) * 640, np.float32)])
    expected = encoder.layer_outputs(encoder.interpolate(encoder.cnn_features(values), out.padded_frames - 30))
    assert torch.allclose(out.hidden_states[30:], expected, atol=1e-6)
    # Without chunks the context spans the whole audio, so the numbers differ.
    assert not torch.allclose(
        encoder.encode(audio, 16000, clip_length=clip).hidden_states, out.hidden_states, atol=1e-3
    )


def test_hallo2_final_chunk_shorter_than_the_cnn_window(encoder) -> None:
    # 100 samples past a 0.4 s chunk: 10 + 1 = 11 frames, one clip of 11. The 1-frame last chunk is
    # not whole clips, so the release pads it by a whole clip of silence (T is whole clips), which
    # is computed but not rendered.
    audio = speechlike(0.4 + 100 / 16000)
    out = encoder.encode(audio, 16000, clip_length=11, chunk_seconds=0.4)
    assert out.padded_frames == out.features.shape[0] == 11 and torch.isfinite(out.hidden_states).all()


def test_bad_audio_input(encoder) -> None:
    with pytest.raises(InputError, match="shorter than one video frame"):
        encoder.encode(np.full(500, 0.1, np.float32), 16000)
    with pytest.raises(InputError, match="NaN or infinite"):
        encoder.encode(np.full(16000, np.nan, np.float32), 16000)
    with pytest.raises(InputError, match="clip_length must be a positive"):
        encoder.encode(speechlike(1.0), 16000, clip_length=0)
    with pytest.raises(InputError, match="chunk_seconds=0.33 must be a whole number of video frames"):
        encoder.encode(speechlike(1.0), 16000, chunk_seconds=0.33)
    with pytest.warns(UserWarning, match="mouth will not move"):
        silent = encoder.encode(np.zeros(16000, np.float32), 16000)
    assert torch.isfinite(silent.features).all()


def test_loading_errors(tmp_path, wav2vec_dir) -> None:
    with pytest.raises(CheckpointError, match="has no config.json.*wav2vec/wav2vec2-base-960h"):
        AudioEncoder(tmp_path)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text((wav2vec_dir / "config.json").read_text())
    with pytest.raises(CheckpointError, match="has no weights"):
        AudioEncoder(partial)
    from safetensors.torch import load_file, save_file

    weights = load_file(str(wav2vec_dir / "model.safetensors"))
    kept = {k: v for k, v in weights.items() if "encoder.layers.0." not in k}
    save_file(kept, str(partial / "model.safetensors"), metadata={"format": "pt"})  # as transformers writes it
    with pytest.raises(CheckpointError, match="lack .* tensors"):
        AudioEncoder(partial)


def _copy_with_damaged_weights(folder, source, name: str, damage: str):
    folder.mkdir()
    for path in source.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    data = (source / name).read_bytes()
    if damage == "truncated":  # a download cut in half
        damaged = data[: len(data) // 2]
    else:  # random bytes of the same size
        damaged = np.random.default_rng(0).bytes(len(data))
    (folder / name).write_bytes(damaged)
    return folder / name


@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_damaged_safetensors_names_the_file(tmp_path, wav2vec_dir, damage: str) -> None:
    path = _copy_with_damaged_weights(tmp_path / "damaged", wav2vec_dir, "model.safetensors", damage)
    with pytest.raises(CheckpointError) as caught:
        AudioEncoder(tmp_path / "damaged")
    message = str(caught.value)
    assert repr(str(path)) in message and "damaged or truncated" in message and "download model.safetensors" in message


@pytest.mark.parametrize("damage", ["truncated", "random", "truncated-legacy"])
def test_damaged_pickle_names_the_file(tmp_path, stable_wav2vec_dir, damage: str) -> None:
    source = stable_wav2vec_dir
    if damage == "truncated-legacy":  # torch.save's pre-zip format, whose end is not checked up front
        source = tmp_path / "legacy"
        source.mkdir()
        for path in stable_wav2vec_dir.iterdir():
            (source / path.name).write_bytes(path.read_bytes())
        weights = torch.load(source / "pytorch_model.bin", weights_only=True)
        torch.save(weights, source / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    path = _copy_with_damaged_weights(tmp_path / "damaged", source, "pytorch_model.bin", damage.split("-")[0])
    with pytest.raises(CheckpointError) as caught:
        AudioEncoder(tmp_path / "damaged")
    message = str(caught.value)
    assert repr(str(path)) in message and "damaged or truncated" in message and "download pytorch_model.bin" in message


def test_safetensors_preferred_over_pickle(tmp_path, wav2vec_dir) -> None:
    folder = tmp_path / "both"
    folder.mkdir()
    for name in ("config.json", "preprocessor_config.json", "model.safetensors"):
        (folder / name).write_bytes((wav2vec_dir / name).read_bytes())
    from safetensors.torch import load_file

    scrambled = {k: torch.zeros_like(v) for k, v in load_file(str(wav2vec_dir / "model.safetensors")).items()}
    torch.save(scrambled, folder / "pytorch_model.bin")
    reference = AudioEncoder(wav2vec_dir).encode(speechlike(0.5), 16000).features
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.equal(AudioEncoder(folder).encode(speechlike(0.5), 16000).features, reference)


def test_legacy_weight_norm_names_count_as_loaded() -> None:
    """transformers 4.x lists the positional conv's weight-norm tensors as missing although torch
    loads them from the checkpoint's `weight_g` / `weight_v`; other gaps are real."""
    from hallo_pipeline.audio.wav2vec import _really_missing

    conv = "wav2vec2.encoder.pos_conv_embed.conv"
    info = {
        "missing_keys": [
            f"{conv}.parametrizations.weight.original0",
            f"{conv}.parametrizations.weight.original1",
            "masked_spec_embed",
            "encoder.layers.0.attention.q_proj.weight",
        ],
        "unexpected_keys": [f"{conv}.weight_g", f"{conv}.weight_v", "lm_head.weight"],
    }
    assert _really_missing(info) == ["encoder.layers.0.attention.q_proj.weight"]
    info["unexpected_keys"] = [f"{conv}.weight_g"]
    assert _really_missing(info) == [
        "encoder.layers.0.attention.q_proj.weight",
        "encoder.pos_conv_embed.conv.parametrizations.weight.original1",
    ]


def test_the_frame_rate_is_the_one_the_weights_were_trained_at(wav2vec_dir) -> None:
    """Video and audio features share one clock (25 fps); another rate would drift the lips off the sound."""
    from hallo_pipeline.audio.features import AudioEncoder
    from hallo_pipeline.errors import InputError

    with pytest.raises(InputError, match=r"fps 30 cannot be used: the Hallo weights were trained at 25 fps"):
        AudioEncoder(wav2vec_dir, fps=30)

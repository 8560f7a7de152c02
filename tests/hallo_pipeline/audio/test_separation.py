"""MDX-Net vocal separation around generated models whose effect is known.

Small STFT settings (n_fft 256, hop 64, 32 frames: chunks of 1984 samples) so a fraction of a
second already spans many overlapping chunks. Test tones sit on STFT bin centres and fade in and
out, so the model sees their energy only in a few bins away from the three zeroed low bins.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hallo_pipeline.audio.separation import KNOWN_MODELS, MDX_SAMPLE_RATE, SEPARATOR_FILE, MdxParams, VocalSeparator
from hallo_pipeline.errors import CheckpointError, InputError

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from hallo_pipeline.testing.tiny_separator import write_mdx_model  # noqa: E402

N_FFT, HOP, DIM_T = 256, 64, 32
BINS = N_FFT // 2 + 1
BIN_HZ = MDX_SAMPLE_RATE / N_FFT
COMPENSATE = 1.25


def params(dim_f: int = BINS) -> MdxParams:
    return MdxParams(n_fft=N_FFT, hop=HOP, dim_f=dim_f, dim_t=DIM_T, compensate=COMPENSATE)


def tone(bin_index: float, seconds: float = 0.5, amplitude: float = 0.2, phase: float = 0.0) -> np.ndarray:
    n = int(seconds * MDX_SAMPLE_RATE)
    t = np.arange(n) / MDX_SAMPLE_RATE
    ramp = np.minimum(1.0, np.minimum(np.arange(n), n - 1 - np.arange(n)) / (0.02 * MDX_SAMPLE_RATE))
    fade = 0.5 - 0.5 * np.cos(np.pi * ramp)
    return (amplitude * fade * np.sin(2 * np.pi * bin_index * BIN_HZ * t + phase)).astype(np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("mdx")
    band = np.zeros(BINS, np.float32)
    band[:40] = 1  # "vocals" = everything below bin 40 (about 6.9 kHz at these settings)
    return {
        "identity": write_mdx_model(root / "identity.onnx", BINS, DIM_T),
        "cut": write_mdx_model(root / "cut.onnx", 96, DIM_T),
        "band": write_mdx_model(root / "band.onnx", BINS, DIM_T, gain_per_bin=band),
        "left": write_mdx_model(root / "left.onnx", BINS, DIM_T, gain_per_channel=[1, 1, 0, 0]),
    }


def test_identity_model_gives_the_input_back_times_compensation(models) -> None:
    stereo = np.stack([tone(20), tone(45, amplitude=0.15, phase=1.0)])
    vocals, rate = VocalSeparator(models["identity"], params()).separate(stereo, MDX_SAMPLE_RATE)
    assert rate == MDX_SAMPLE_RATE and vocals.shape == stereo.shape and vocals.dtype == np.float32
    assert np.max(np.abs(vocals - COMPENSATE * stereo)) < 1e-3 * COMPENSATE * 0.2


def test_bins_above_dim_f_are_dropped(models) -> None:
    low, high = tone(20), tone(110)  # bin 110 is beyond the model's 96 bins
    vocals, _ = VocalSeparator(models["cut"], params(dim_f=96)).separate(np.stack([low + high] * 2), MDX_SAMPLE_RATE)
    assert np.max(np.abs(vocals[0] - COMPENSATE * low)) < 2e-3 * COMPENSATE * 0.2


def test_band_model_separates_a_known_mix(models) -> None:
    voice, instrument = tone(12, seconds=1.0), tone(80, seconds=1.0, amplitude=0.3)
    mix = np.stack([voice + instrument, voice + instrument])
    vocals, _ = VocalSeparator(models["band"], params()).separate(mix, MDX_SAMPLE_RATE)
    for channel in vocals:
        assert np.max(np.abs(channel - COMPENSATE * voice)) < 2e-3 * COMPENSATE * 0.2


def test_channel_layout_is_left_re_im_then_right_re_im(models) -> None:
    stereo = np.stack([tone(20), tone(30)])
    vocals, _ = VocalSeparator(models["left"], params()).separate(stereo, MDX_SAMPLE_RATE)
    assert np.max(np.abs(vocals[0] - COMPENSATE * stereo[0])) < 1e-3 * COMPENSATE * 0.2
    assert np.max(np.abs(vocals[1])) < 1e-6


def test_mono_other_rates_and_loud_input(models) -> None:
    separator = VocalSeparator(models["identity"], params())
    mono16k = tone(20, seconds=0.5)  # passed as 16 kHz audio: resampled to 44.1 kHz for the model
    vocals, rate = separator.separate(torch.from_numpy(mono16k), 16000)
    assert rate == MDX_SAMPLE_RATE and vocals.shape == (2, int(np.ceil(mono16k.size * MDX_SAMPLE_RATE / 16000)))
    assert np.array_equal(vocals[0], vocals[1])
    loud, _ = separator.separate(np.stack([tone(20, amplitude=3.0)] * 2), MDX_SAMPLE_RATE)
    assert np.max(np.abs(loud)) <= 0.9 + 1e-6  # mix and result limited to a 0.9 peak, like the release


def test_separation_feeds_the_audio_encoder(models, encoder) -> None:
    separator = VocalSeparator(models["band"], params())
    voice, instrument = tone(12, seconds=1.0), tone(80, seconds=1.0, amplitude=0.3)
    features = encoder.encode(np.stack([voice + instrument] * 2), MDX_SAMPLE_RATE, separator=separator)
    vocals_16k = encoder.encode(COMPENSATE * voice, MDX_SAMPLE_RATE)
    assert features.frames == vocals_16k.frames
    assert np.allclose(features.waveform.numpy(), vocals_16k.waveform.numpy(), atol=1e-3)


def test_settings_and_files(tmp_path, models) -> None:
    assert KNOWN_MODELS[SEPARATOR_FILE.name] == MdxParams(n_fft=7680, hop=1024, dim_f=3072, dim_t=256, compensate=1.009)
    with pytest.raises(CheckpointError, match="audio_separator/Kim_Vocal_2.onnx"):
        VocalSeparator.from_models_dir(tmp_path)
    with pytest.raises(CheckpointError, match="pass its MdxParams"):
        VocalSeparator(models["identity"])
    with pytest.raises(CheckpointError, match="takes input .* not the model these settings are for"):
        VocalSeparator(models["cut"], params(dim_f=BINS))
    kim = tmp_path / SEPARATOR_FILE
    kim.parent.mkdir(parents=True)
    kim.write_bytes(models["identity"].read_bytes())  # Kim's settings, but a graph of other sizes
    with pytest.raises(CheckpointError, match="not the model these settings are for"):
        VocalSeparator.from_models_dir(tmp_path)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a graph")
    with pytest.raises(CheckpointError, match="cannot be loaded"):
        VocalSeparator(broken, params())
    with pytest.raises(InputError, match="NaN or infinite"):
        VocalSeparator(models["identity"], params()).separate(np.full((2, 5000), np.nan, np.float32), MDX_SAMPLE_RATE)

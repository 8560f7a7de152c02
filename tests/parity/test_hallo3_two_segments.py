"""Parity case `two_segments` (SPEC §11): the whole segment loop from the portrait, the audio features and the
prompt's T5 states, with every recorded random draw replayed in order: per segment the concat latent, the
audio window, the sampler output and the decoded frames, every VAE encode, and the final video and uint8
frames. Free-running: segment 1 continues from our own segment 0. The loop's tests are slow (`-m slow`)."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import torch

from tests.parity.conftest import assert_matches, hallo3_case

CASE = hallo3_case("two_segments")
pytestmark = pytest.mark.parity
# The loop takes ~17 s on one thread (two 49-frame decodes of ~7 s each); the fixture README labels it slow.
slow = pytest.mark.slow

WAV2VEC_SITE = "modeling_wav2vec2"  # LayerDrop draws the release makes and our encoder does not (SPEC §7.4)


def _replayed_noise():
    from hallo_pipeline.hallo3.noise import ReplayedNoise

    table = [d for d in CASE.settings["noise_draws"] if WAV2VEC_SITE not in d["site"]]
    return ReplayedNoise([CASE.tensors[f"input.noise.{d['index']:03d}"] for d in table], [d["fn"] for d in table])


def _windows(hidden: torch.Tensor) -> torch.Tensor:
    """(N, layers, C) -> (N, 5, layers, C) windows clamped to the sequence (SPEC §10), the library's way."""
    from hallo_pipeline.audio.features import WINDOW_RADIUS, windowed

    r = WINDOW_RADIUS
    return windowed(torch.cat([hidden[:1].expand(r, -1, -1), hidden, hidden[-1:].expand(r, -1, -1)]))


def _conditions(root):
    from PIL import Image
    from safetensors.torch import load_file

    from hallo_pipeline.hallo3.preprocess import prepare_portrait
    from hallo_pipeline.hallo3.segments import VideoConditions

    size = tuple(json.loads((root / "tiny_config.json").read_text())["image_size"])
    with Image.open(root / CASE.settings["image"]) as image:
        rgb = np.asarray(image.convert("RGB"))
    landmarks = load_file(str(root / "inputs" / "landmarks.safetensors"))["landmarks"].numpy()
    portrait = prepare_portrait(rgb, landmarks, size)
    t = CASE.tensors
    return portrait, VideoConditions(
        image=portrait.image,
        reference=portrait.reference,
        face_embedding=t["expected.face_emb"],
        text=t["expected.text_c"],
        audio=_windows(t["input.audio_hidden_states"]),
        frames=CASE.settings["audio_length_frames"],
    )


class RecordingVAE:
    """The VAE, keeping every encode's pixels and scaled latent in call order."""

    def __init__(self, vae):
        self.vae, self.calls = vae, []

    def __getattr__(self, name):
        return getattr(self.vae, name)

    def encode(self, frames, noise):
        latent = self.vae.encode(frames, noise)
        self.calls.append((frames.clone(), latent.clone()))
        return latent


@pytest.fixture(scope="module")
def run(hallo3_parity_path):
    from hallo_pipeline.hallo3.config import Hallo3Config
    from hallo_pipeline.hallo3.segments import LoopSettings, generate_segments
    from hallo_pipeline.hallo3.vae import VAE_FILE, VAEConfig, load_vae
    from tests.parity.hallo3_networks import tiny_hallo3

    if not CASE.present:
        pytest.skip(f"case two_segments not found in {hallo3_parity_path}")
    sizes = json.loads((hallo3_parity_path / "tiny_config.json").read_text())
    vae = RecordingVAE(load_vae(hallo3_parity_path / "models" / VAE_FILE, VAEConfig.from_dict(sizes["vae"])))
    config = Hallo3Config.from_json_file(hallo3_parity_path / "tiny_config.json")
    settings = LoopSettings.from_config(config, steps=CASE.settings["num_steps"], guidance=CASE.settings["guidance"])
    portrait, conditions = _conditions(hallo3_parity_path)
    noise = _replayed_noise()
    segments = list(generate_segments(tiny_hallo3(hallo3_parity_path), vae, conditions, noise, settings))
    return {"vae": vae, "settings": settings, "portrait": portrait, "noise": noise, "segments": segments}


def _check(actual: torch.Tensor, name: str) -> None:
    assert_matches(actual, CASE.tensors[name], CASE.tolerance(name), f"two_segments {name}")


@slow
def test_segment_count_and_frames(run):
    segments, settings = run["segments"], run["settings"]
    assert settings.stride == CASE.settings["frames_per_segment_kept"]
    recorded = sorted({int(m[1]) for n in CASE.names("seg") if (m := re.match(r"seg(\d+)\.", n))})
    # Segments whose new frames all lie past the audio's end are skipped (they only feed cut frames).
    assert [s.index for s in segments] == [i for i in recorded if i * settings.stride < CASE.settings["final_frames"]]
    assert sum(s.frames.shape[0] for s in segments) == CASE.settings["final_frames"]


@slow
@pytest.mark.parametrize("what", ["concat", "audio_emb", "latent", "decoded"])
def test_per_segment(run, what):
    for segment in run["segments"]:
        ours = {"concat": segment.concat, "audio_emb": segment.audio, "latent": segment.latent,
                "decoded": segment.decoded}[what]
        _check(ours, f"seg{segment.index}.expected.{what}")


@slow
def test_encodes_and_draw_order(run):
    """Every VAE encode in the release's order. The release also encodes a concat latent after the last
    segment (unused); its draws are the last ones recorded, and `motion_concat` on our last segment's
    frames gives it too, which also uses up every recorded draw."""
    from hallo_pipeline.hallo3.segments import motion_concat, next_motion, output_frames

    vae, noise, settings = run["vae"], run["noise"], run["settings"]
    last = run["segments"][-1]
    motion_concat(vae, run["portrait"].image, next_motion(output_frames(last.decoded), settings), noise, settings)
    assert noise.remaining == 0, f"{noise.remaining} recorded draws were not asked for"
    names = sorted({int(m[1]) for n in CASE.names("enc") if (m := re.match(r"enc(\d+)\.", n))})
    assert len(vae.calls) == len(names) == len(CASE.settings["encode_calls"])
    for k, (pixels, latent) in zip(names, vae.calls):
        _check(pixels, f"enc{k}.expected.pixels")
        _check(latent, f"enc{k}.expected.latent")
    reference = vae.calls[1][1]  # the reference encode follows segment 0's concat encode
    _check(reference.permute(0, 2, 1, 3, 4), "expected.ref_latent")


@slow
def test_video_and_written_frames(run):
    from hallo_pipeline.hallo3.preprocess import frames_to_uint8

    video = torch.cat([s.frames for s in run["segments"]])
    _check(video[None], "expected.video")
    ours = frames_to_uint8(video, square=run["portrait"].square)
    expected = CASE.tensors["expected.frames_u8"]
    assert ours.shape == expected.shape
    diff = (ours.int() - expected.int()).abs()
    # Truncation to uint8: float round-off may cross a level boundary on a few pixels (fixture README).
    assert diff.max().item() <= CASE.settings["tolerance"]["expected.frames_u8"]["atol"]
    assert diff.count_nonzero().item() <= 1e-3 * diff.numel(), f"{diff.count_nonzero().item()} pixels differ"


def test_audio_features_from_the_wav(hallo3_parity_path):
    """The case's wav2vec2 states and audio length come out of our audio chain (SPEC §10) from its wav."""
    from hallo_pipeline.audio.features import AudioEncoder
    from hallo_pipeline.audio.io import load_audio
    from hallo_pipeline.hallo3.preprocess import encode_audio

    waveform, rate = load_audio(hallo3_parity_path / CASE.settings["wav"])
    clip = json.loads((hallo3_parity_path / "tiny_config.json").read_text())["dit"]["num_frames"]
    features = encode_audio(AudioEncoder.from_models_dir(hallo3_parity_path / "models"), waveform, rate,
                            segment_frames=clip)
    assert (features.frames, features.padded_frames) == (
        CASE.settings["audio_length_frames"], CASE.settings["padded_frames"]
    )
    tol = hallo3_case("preprocess").tolerance("expected.hidden_states")  # the same chain, measured there
    assert_matches(features.hidden_states, CASE.tensors["input.audio_hidden_states"], tol, "audio_hidden_states")
    assert_matches(features.features, _windows(CASE.tensors["input.audio_hidden_states"]), tol, "windows")


@pytest.fixture(scope="module")
def generator(hallo3_parity_path):
    from hallo_pipeline.hallo3.config import Hallo3Config
    from hallo_pipeline.hallo3.pipeline import Hallo3Generator
    from hallo_pipeline.hallo3.vae import VAEConfig

    sizes = json.loads((hallo3_parity_path / "tiny_config.json").read_text())
    return Hallo3Generator.from_model_folder(
        hallo3_parity_path / "models", Hallo3Config.from_dict(sizes), VAEConfig.from_dict(sizes["vae"])
    )


@pytest.fixture(scope="module")
def prepared(generator, hallo3_parity_path):
    from safetensors.torch import load_file

    from hallo_pipeline.audio.io import load_audio

    inputs = hallo3_parity_path / "inputs"
    waveform, rate = load_audio(hallo3_parity_path / CASE.settings["wav"])
    with warnings.catch_warnings():
        # The case's prompt is longer than the tiny model's text length: cut, as the release cuts it (we warn).
        warnings.filterwarnings("ignore", message="the prompt is")
        return generator.prepare(
            hallo3_parity_path / CASE.settings["image"], waveform, rate, CASE.settings["prompt"],
            landmarks=load_file(str(inputs / "landmarks.safetensors"))["landmarks"].numpy(),
            face_embedding=load_file(str(inputs / "face_embedding.safetensors"))["face_embedding"],
            framing="stretch",  # the release's geometry: the case was made from the whole photo
        )


def test_generator_prepares_the_cases_inputs(prepared):
    """The model folder's T5 and wav2vec2, the photo and the stand-ins for the face models give the case's
    text, audio and identity inputs."""
    face, conditions = prepared
    _check(conditions.text, "expected.text_c")
    _check(conditions.face_embedding, "expected.face_emb")
    assert conditions.frames == CASE.settings["audio_length_frames"]
    tol = hallo3_case("preprocess").tolerance("expected.windowed")
    assert_matches(conditions.audio, _windows(CASE.tensors["input.audio_hidden_states"]), tol, "audio windows")
    assert face.portrait.square and face.framing is None


@slow
def test_generator_makes_the_cases_video(generator, prepared):
    """The generator's own inputs and loaded parts, the recorded draws replayed: the case's video."""
    _, conditions = prepared
    segments = generator.generate(conditions, steps=CASE.settings["num_steps"], guidance=CASE.settings["guidance"],
                                  noise=_replayed_noise())
    _check(torch.cat([s.frames for s in segments])[None], "expected.video")

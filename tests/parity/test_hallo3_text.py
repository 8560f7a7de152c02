"""The T5 text embedding (SPEC §8) against the release's, recorded in `dit_step` (`input.token_ids`,
`input.text_c`, `input.text_uc`) and `two_segments` (`expected.text_c` / `text_uc`), for the cases' prompt
and the fixture set's tiny T5 folder; the text length is the DiT's, from the set's tiny_config.json."""

from __future__ import annotations

import json

import pytest
import torch

from tests.parity.conftest import assert_matches, hallo3_case

pytestmark = [pytest.mark.parity, pytest.mark.filterwarnings("ignore:the prompt is .* tokens long")]
RECORDS = [("dit_step", "input."), ("two_segments", "expected.")]


@pytest.fixture(scope="module")
def encoder(hallo3_parity_path):
    from hallo_pipeline.hallo3.text import T5TextEncoder

    length = json.loads((hallo3_parity_path / "tiny_config.json").read_text())["dit"]["text_length"]
    return T5TextEncoder.from_models_dir(hallo3_parity_path / "models", length=length)


def test_token_ids(encoder):
    case = hallo3_case("dit_step")
    ids = encoder.tokenizer(case.settings["prompt"])
    assert torch.equal(ids, case.tensors["input.token_ids"])


@pytest.mark.parametrize("name, prefix", RECORDS)
def test_text_embeddings(encoder, name, prefix):
    from hallo_pipeline.hallo3.text import unconditional_text

    case = hallo3_case(name)
    if not case.present:
        pytest.skip(f"case {name} is not in this fixture set")
    text = encoder.encode(case.settings["prompt"])
    for ours, tensor in ((text, f"{prefix}text_c"), (unconditional_text(text), f"{prefix}text_uc")):
        assert_matches(ours, case.tensors[tensor], case.tolerance(tensor), f"{name} {tensor}")

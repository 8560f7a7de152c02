"""The Hallo3 parity set's `segment` case wired into the main DiT, for the parity test and the fp8 drift benchmark
(`../shared/parity-hallo3/README.md` names the tensors)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch


def segment_case_velocities(nets, tensors: Mapping[str, torch.Tensor]) -> Callable:
    """`velocities(x, timestep) -> (uncond, cond)` of the case's inputs: the reference bank of its reference latent,
    its concat latent, text pair, face embedding and audio window, as the release's segment runs them."""
    from ..hallo3.segments import guided_batch

    main, t = nets.main, tensors
    bank, _ = nets.reference.reference_bank(t["input.ref_latent"])
    batch = guided_batch(
        main, t["input.concat"], torch.cat([t["input.text_uc"], t["input.text_c"]]),
        main.project_face(t["input.face_emb"].expand(2, -1)), t["input.audio_emb"],
        main.reference_kv([rows.expand(2, -1, -1) for rows in bank]),
    )

    def velocities(x: torch.Tensor, timestep: int) -> tuple[torch.Tensor, torch.Tensor]:
        v = main(latent=x.expand(2, -1, -1, -1, -1), timestep=torch.full((2,), timestep), **batch)
        return v[:1], v[1:]

    return velocities

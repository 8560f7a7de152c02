"""Hallo3: a CogVideoX-5B video DiT with an identity reference bank and face/audio cross-attention
(`SPEC-HALLO3.md`), its 3D causal VAE, T5 text encoder and sampler. A second model family beside
Hallo/Hallo2; importing this package loads nothing heavy (each module imports torch, diffusers or
transformers itself)."""

"""Hallo3: the CogVideoX-5B video DiT family (reference bank, face/audio cross-attention, 3D causal VAE).

Importing this package is cheap: every module imports torch, diffusers or transformers itself.
"""

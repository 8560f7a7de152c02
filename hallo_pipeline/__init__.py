"""Hallo / Hallo2 talking-head generation as a plain PyTorch library (no ComfyUI imports).

Importing this package is cheap: the networks and the optional face/audio libraries are
imported by the modules that need them.
"""

__version__ = "0.1.0"

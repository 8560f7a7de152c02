"""Talking-head generation (Hallo / Hallo2, and Hallo3 in progress) as a plain PyTorch library (no ComfyUI imports).

Each model family lives in its own package (`hallo/`, `hallo3/`); what they share (audio features, face
finding, framing, video writing, devices, safe loading, errors, settings) lives here at the top level, and
`families.py` is the one interface the command line and the nodes use to find and load a family's weights.
Importing this package is cheap: the networks and the optional face/audio libraries are imported by the
modules that need them.
"""

__version__ = "0.1.0"

"""The library's public entry to generation, whatever the model family.

    from hallo_pipeline.pipeline import HalloPipeline, load_pipeline, stitch

`load_pipeline(model_dir, variant="auto", device=..., dtype=...)` loads the pipeline of the family whose
weights the folder holds (`families.py`). The Hallo family's pipeline, the one that generates today, keeps
its public names here: they are defined in `hallo/pipeline.py` and re-exported, so scripts written against
this module (the README's Python API) need not know where a family keeps its code.
"""

from __future__ import annotations

from .families import load_pipeline
from .hallo.pipeline import FrameSegment, HalloPipeline, PreparedReference, check_animate_inputs, stitch

__all__ = ["FrameSegment", "HalloPipeline", "PreparedReference", "check_animate_inputs", "load_pipeline", "stitch"]

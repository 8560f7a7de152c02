"""The Hallo family: Hallo and Hallo2 weights (SD-1.5 UNet + ReferenceNet + motion and audio modules, 512x512,
16-frame clips, `SPEC.md`). Its networks (`models/`), checkpoint layout (`checkpoint.py`, `model_files.py`),
sampler loop (`sampling/`), face conditioning (`face_analysis.py`, `masks.py`) and `HalloPipeline`
(`pipeline.py`); `family.py` is its entry in the family registry (`hallo_pipeline.families`).
Importing this package loads nothing heavy."""

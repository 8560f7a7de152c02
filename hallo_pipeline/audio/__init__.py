"""Driving-audio preprocessing: loading, mono 16 kHz, optional vocal separation, wav2vec2 features.

`features.AudioEncoder` is the entry point the pipeline calls. Importing this package is cheap:
PyAV, SciPy, transformers and onnxruntime load on first use.
"""

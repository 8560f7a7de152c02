"""Small deterministic stand-ins for the external models, for tests and `make-tiny-models`.

They have the real files' interfaces (names, input/output signatures), so the real library
code paths (insightface, onnxruntime) run on them offline; their numbers mean nothing.
"""

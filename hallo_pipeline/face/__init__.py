"""Portrait preprocessing: landmarks, region boxes and masks, identity embedding (SPEC §8).

`analysis.analyze_face` is the one entry point the pipeline calls; the other modules are its
steps. Importing this package is cheap: mediapipe, insightface and OpenCV load on first use.
"""

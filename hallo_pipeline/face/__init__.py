"""Portrait preprocessing every model family shares: reading images, landmarks, boxes, identity embedding.

`finder.FaceFinder` finds the one face to animate; a family computes what its networks need from it
(Hallo: `hallo.face_analysis`). Importing this package is cheap: mediapipe, insightface and OpenCV load
on first use.
"""

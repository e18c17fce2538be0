"""Synthetic parcel images for the grading camera (:mod:`simulator.vision.generator`)."""

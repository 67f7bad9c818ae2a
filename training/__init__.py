"""Reproducible training and evaluation of the detection classifier (see docs/detection.md)."""

"""Mesh geometry: loading and normalization, inside/outside labels, training samples, and the quality metrics."""

"""Shared parts of the classical baseline codecs: the result record, input checks and the candidate judge."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
import trimesh

from vatcodec.errors import MeshError
from vatcodec.geometry.metrics import SurfaceIndex, surface_metrics


@dataclass
class BaselineResult:
    """One baseline codec's best result within a byte budget.

    Attributes:
        codec: "draco" or "voxel".
        budget: The byte budget asked for.
        nbytes: Size of the complete compressed payload, headers included (<= budget).
        mesh: The decode of that payload, in the input mesh's coordinates.
        params: Codec settings that produced it, e.g. {"faces": 812, "qbits": 9} or {"res": 48}.
        metrics: ``surface_metrics`` of ``mesh`` against the input in the input's unit-cube frame,
            when the search computed them (None otherwise).
    """

    codec: str
    budget: int
    nbytes: int
    mesh: trimesh.Trimesh
    params: dict
    metrics: dict | None = None


def _geometry(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 and faces (F, 3) int64 of a mesh with positive area and extent."""
    vertices_V3 = np.asarray(mesh.vertices, dtype=np.float64)
    faces_F3 = np.asarray(mesh.faces, dtype=np.int64)
    if faces_F3.ndim != 2 or len(faces_F3) == 0 or faces_F3.shape[1] != 3:
        raise MeshError("baseline input has no triangle faces")
    if not np.isfinite(vertices_V3).all():
        raise MeshError("baseline input has NaN or infinite vertex coordinates")
    used_U3 = vertices_V3[np.unique(faces_F3)]
    if float(np.ptp(used_U3, axis=0).max()) <= 0.0:
        raise MeshError("baseline input has zero extent")
    return vertices_V3, faces_F3


class _Judge:
    """Scores candidate decodes against the input, in the input's unit-cube frame.

    A cheap proxy (few samples, reference index built once) ranks candidates; ``surface_metrics``
    at its defaults confirms the few that matter.
    """

    def __init__(self, vertices_V3: np.ndarray, faces_F3: np.ndarray):
        used_U3 = vertices_V3[np.unique(faces_F3)]
        lo, hi = used_U3.min(axis=0), used_U3.max(axis=0)
        self.center = (lo + hi) / 2
        self.scale = float((hi - lo).max())
        self.ref = self.to_unit(trimesh.Trimesh(vertices_V3, faces_F3, process=False))
        self._ref_index: SurfaceIndex | None = None

    def to_unit(self, mesh: trimesh.Trimesh) -> trimesh.Trimesh:
        """``mesh`` mapped by the input's unit-cube normalization."""
        vertices = (np.asarray(mesh.vertices, dtype=np.float64) - self.center) / self.scale
        return trimesh.Trimesh(vertices, np.asarray(mesh.faces), process=False)

    def proxy_fscore(self, mesh: trimesh.Trimesh, n_query: int = 4000, tau: float = 0.01) -> float:
        """F-score from 4k queries each way against 60k-sample indices; fixed seeds."""
        pred = self.to_unit(mesh)
        if len(pred.faces) == 0 or not pred.area > 0:
            return 0.0
        if self._ref_index is None:
            self._ref_index = SurfaceIndex(self.ref, 60_000, np.random.default_rng(1))
        pred_index = SurfaceIndex(pred, 60_000, np.random.default_rng(2))
        d_pred = self._ref_index.query(pred_index.points_N3[:n_query], k=4)[0]
        d_ref = pred_index.query(self._ref_index.points_N3[:n_query], k=4)[0]
        precision, recall = float(np.mean(d_pred < tau)), float(np.mean(d_ref < tau))
        return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)

    def metrics(self, mesh: trimesh.Trimesh) -> dict[str, float]:
        """``surface_metrics`` of ``mesh`` against the input, at its defaults, in the unit frame."""
        return surface_metrics(self.to_unit(mesh), self.ref)


def _import(module: str):
    """Imports one of the optional ``bench`` extras, naming the extra when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"the Draco baseline needs {module}: pip install 'vatcodec[bench]'") from None

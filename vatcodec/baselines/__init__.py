"""Classical baseline codecs at a byte budget: simplify + Draco (`draco`), and voxel occupancy + zstd (`voxel`).

Both adapters take a mesh in any coordinates and return the decode of the bytes they chose, in
those same coordinates. Candidate quality is judged in the input's unit-cube frame (bbox centred,
longest side 1), the frame in which ``surface_metrics`` and its tau = 0.01 are meaningful.
"""

from .common import BaselineResult
from .draco import DracoBaseline, cluster_to_face_count, decode_draco, draco_at_budget
from .voxel import (
    VoxelBaseline,
    VoxelGrid,
    decode_voxels,
    encode_voxels,
    voxel_at_budget,
    voxel_occupancy,
    voxels_to_mesh,
)

BASELINES = {"draco": DracoBaseline, "voxel": VoxelBaseline}

__all__ = [
    "BASELINES",
    "BaselineResult",
    "DracoBaseline",
    "VoxelBaseline",
    "VoxelGrid",
    "cluster_to_face_count",
    "decode_draco",
    "decode_voxels",
    "draco_at_budget",
    "encode_voxels",
    "voxel_at_budget",
    "voxel_occupancy",
    "voxels_to_mesh",
]

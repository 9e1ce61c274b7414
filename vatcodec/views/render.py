"""Small CPU ray-cast renderer: shaded views of meshes for benchmark galleries and image-conditioned training.

Each pixel casts one ray (or ``supersample**2`` rays) through trimesh's ray interface: Intel Embree through
``embreex`` when it is installed (``pip install "vatcodec[render]"``), else trimesh's rtree-based ``ray_triangle``
intersector, which gives the same image (up to a few edge pixels) far more slowly. The mesh is framed in the unit
cube (bounding box centred, longest side 1, as ``vatcodec.geometry.mesh_io.normalize_mesh``) and seen by a y-up
camera that
looks at the origin from a distance where the unit cube fits every view, so all views and all shapes share one
scale; shading is two-sided Lambert with a headlight plus a little ambient, on a plain background.
Rendering is deterministic: no randomness except the seeded view choice of ``render_views``.

Time for one 256 px view of ``examples/chair.obj`` (2430 faces), on the 2-core dev machine while a training job
held both cores, ``nice -n 19 python -m vatcodec.views.render examples/chair.obj --backend B`` (build + cast):
    B = embree (embreex 4.4.0.post1):      0.023 s
    B = triangle (trimesh 5.2 + rtree):    8.0 s
"""

from __future__ import annotations

import math
import time

import numpy as np
import trimesh

from vatcodec.geometry.mesh_io import Normalization

BACKENDS = ("auto", "embree", "triangle")
DEFAULT_COLOR = (170, 184, 208)  # light steel blue: shading stays readable on a white background
AMBIENT = 0.25  # floor of the shading, so faces seen edge-on do not turn black


def has_embree() -> bool:
    """True when trimesh can use Embree (the ``embreex`` package) for ray queries."""
    return bool(trimesh.ray.has_embree)


def unit_frame(mesh: trimesh.Trimesh | None) -> Normalization | None:
    """The unit-cube frame of a mesh (bbox of the vertices used by faces), or None when nothing can be drawn.

    Unlike ``normalize_mesh`` this never raises: empty, degenerate and non-finite meshes just give None.
    """
    if mesh is None:
        return None
    v_N3, f_F3 = _finite_geometry(mesh)
    if len(f_F3) == 0:
        return None
    used_M3 = v_N3[np.unique(f_F3)]
    lo_3, hi_3 = used_M3.min(axis=0), used_M3.max(axis=0)
    scale = float((hi_3 - lo_3).max())
    if not scale > 0.0:
        return None
    return Normalization(center=tuple(float(c) for c in (lo_3 + hi_3) / 2), scale=scale)


def _finite_geometry(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and the faces whose corners are all finite and in range (bad faces are dropped, not fatal)."""
    v_N3 = np.asarray(mesh.vertices, dtype=np.float64).reshape(-1, 3)
    f_F3 = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    if len(f_F3) == 0 or len(v_N3) == 0:
        return v_N3, np.zeros((0, 3), dtype=np.int64)
    ok_F = (f_F3 >= 0).all(axis=1) & (f_F3 < len(v_N3)).all(axis=1)
    f_F3 = f_F3[ok_F]
    finite_N = np.isfinite(v_N3).all(axis=1)
    return v_N3, f_F3[finite_N[f_F3].all(axis=1)]


class _Scene:
    """A mesh moved into its unit-cube frame with its ray intersector, built once for any number of views."""

    def __init__(self, mesh: trimesh.Trimesh | None, frame: Normalization | None, backend: str):
        if backend not in BACKENDS:
            raise ValueError(f"unknown render backend {backend!r} (choose from {', '.join(BACKENDS)})")
        if backend == "embree" and not has_embree():
            raise ValueError("render backend 'embree' needs the embreex package: pip install embreex")
        self.mesh = None
        frame = frame if frame is not None else unit_frame(mesh)
        if mesh is None or frame is None:
            return
        v_N3, f_F3 = _finite_geometry(mesh)
        tri_F33 = v_N3[f_F3]
        n_F3 = np.cross(tri_F33[:, 1] - tri_F33[:, 0], tri_F33[:, 2] - tri_F33[:, 0])
        length_F = np.linalg.norm(n_F3, axis=1)
        keep_F = length_F > 0  # zero-area faces have no normal and cover no pixel
        if not keep_F.any():
            return
        self.normals_F3 = n_F3[keep_F] / length_F[keep_F, None]
        self.mesh = trimesh.Trimesh(vertices=frame.to_unit(v_N3), faces=f_F3[keep_F], process=False)
        if backend == "triangle" or not has_embree():
            self.intersector = trimesh.ray.ray_triangle.RayMeshIntersector(self.mesh)
        else:
            self.intersector = trimesh.ray.ray_pyembree.RayMeshIntersector(self.mesh)

    def draw(
        self, size, azimuth_deg, elevation_deg, fov_deg, distance, background, color, supersample, alpha
    ):
        if size < 1 or supersample < 1:
            raise ValueError(f"size and supersample must be >= 1, got {size} and {supersample}")
        if not 0.0 < fov_deg < 180.0:
            raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
        n = size * supersample
        coverage_HW = np.zeros((size, size))
        shade_HW3 = np.zeros((size, size, 3))
        if self.mesh is not None:
            origin_3, dirs_N3 = camera_rays(n, azimuth_deg, elevation_deg, fov_deg, distance)
            tri_N = self.intersector.intersects_first(np.broadcast_to(origin_3, dirs_N3.shape), dirs_N3)
            hit_N = tri_N >= 0
            # Two-sided headlight: the light comes along the ray, abs() because normals may be flipped.
            cos_N = np.zeros(len(dirs_N3))
            cos_N[hit_N] = np.abs(np.einsum("ij,ij->i", self.normals_F3[tri_N[hit_N]], dirs_N3[hit_N]))
            lum_N = np.where(hit_N, AMBIENT + (1.0 - AMBIENT) * cos_N, 0.0)
            rgb_N3 = lum_N[:, None] * np.asarray(color, dtype=np.float64)[None, :]
            # Box-filter the supersamples: shaded colour is premultiplied by coverage.
            blocks = (size, supersample, size, supersample)
            coverage_HW = hit_N.reshape(blocks).mean(axis=(1, 3))
            shade_HW3 = rgb_N3.reshape(*blocks, 3).mean(axis=(1, 3))
        bg_3 = np.asarray(background, dtype=np.float64)
        img_HW3 = shade_HW3 + (1.0 - coverage_HW[..., None]) * bg_3
        img_HW3 = np.clip(np.rint(img_HW3), 0, 255).astype(np.uint8)
        if not alpha:
            return img_HW3
        alpha_HW1 = np.rint(coverage_HW * 255).astype(np.uint8)[..., None]
        return np.concatenate([img_HW3, alpha_HW1], axis=-1)


def default_distance(fov_deg: float) -> float:
    """Camera distance at which the unit cube's bounding sphere (radius sqrt(3)/2) just fits the view."""
    return math.sqrt(3.0) / 2.0 / math.sin(math.radians(fov_deg) / 2.0)


def camera_rays(
    size: int, azimuth_deg: float, elevation_deg: float, fov_deg: float, distance: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Camera position and one unit ray direction per pixel centre, row-major from the top-left pixel.

    Azimuth 0 and elevation 0 put the camera on +z looking down -z; azimuth turns it about +y towards +x,
    elevation raises it towards +y. Returns ``(origin_3, dirs_N3)`` with N = size * size.
    """
    distance = default_distance(fov_deg) if distance is None else float(distance)
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    origin_3 = distance * np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
    forward_3 = -origin_3 / np.linalg.norm(origin_3)
    right_3 = np.cross(forward_3, [0.0, 1.0, 0.0])
    if np.linalg.norm(right_3) < 1e-9:  # looking straight up or down: keep the image's right along +x
        right_3 = np.array([1.0, 0.0, 0.0])
    right_3 /= np.linalg.norm(right_3)
    up_3 = np.cross(right_3, forward_3)
    half = math.tan(math.radians(fov_deg) / 2.0)
    t_S = ((np.arange(size) + 0.5) / size * 2.0 - 1.0) * half
    x_HW, y_HW = np.meshgrid(t_S, -t_S)  # image rows go down, camera up goes up
    dirs_N3 = forward_3 + x_HW.reshape(-1, 1) * right_3 + y_HW.reshape(-1, 1) * up_3
    return origin_3, dirs_N3 / np.linalg.norm(dirs_N3, axis=1, keepdims=True)


def render(
    mesh: trimesh.Trimesh | None,
    *,
    size: int = 256,
    azimuth_deg: float = 30.0,
    elevation_deg: float = 20.0,
    fov_deg: float = 40.0,
    distance: float | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
    color: tuple[int, int, int] = DEFAULT_COLOR,
    supersample: int = 1,
    alpha: bool = False,
    frame: Normalization | None = None,
    backend: str = "auto",
) -> np.ndarray:
    """Renders one shaded view of a mesh.

    Args:
        mesh: Any triangle mesh; None, an empty or a degenerate mesh renders as the plain background.
        size: Image side in pixels.
        azimuth_deg: Camera angle about the +y axis; 0 looks from +z.
        elevation_deg: Camera angle above the xz plane.
        fov_deg: Full vertical (and horizontal) field of view.
        distance: Camera distance from the origin; None fits the unit cube whatever the view direction.
        background: RGB of pixels that see no surface.
        color: RGB of a surface lit head-on.
        supersample: Rays per pixel side, averaged (2 gives smooth edges for 4x the rays).
        alpha: Also return an alpha channel holding the coverage.
        frame: Unit-cube frame to use instead of the mesh's own, e.g. the original's for a decoded shape.
        backend: "auto" (Embree if installed), "embree" or "triangle" (trimesh's rtree intersector).

    Returns:
        ``img_HW3`` uint8 RGB, or ``img_HW4`` RGBA when ``alpha`` is set.
    """
    scene = _Scene(mesh, frame, backend)
    return scene.draw(
        size, azimuth_deg, elevation_deg, fov_deg, distance, background, color, supersample, alpha
    )


def view_angles(
    n_views: int, seed: int | None = None, elevation_deg: float = 20.0
) -> list[tuple[float, float]]:
    """(azimuth, elevation) pairs in degrees: evenly spaced azimuths, or seeded random ones.

    With ``seed=None`` the azimuths are 30 + 360 k / n at ``elevation_deg``; with a seed, azimuths are
    uniform in [0, 360) and elevations uniform in [0, 40), both from ``numpy.random.default_rng(seed)``.
    """
    if seed is None:
        return [((30.0 + 360.0 * k / n_views) % 360.0, float(elevation_deg)) for k in range(n_views)]
    rng = np.random.default_rng(seed)
    az_V, el_V = rng.uniform(0.0, 360.0, n_views), rng.uniform(0.0, 40.0, n_views)
    return [(float(a), float(e)) for a, e in zip(az_V, el_V, strict=True)]


def render_views(
    mesh: trimesh.Trimesh | None,
    n_views: int = 4,
    size: int = 256,
    *,
    seed: int | None = None,
    azimuths_deg: list[float] | None = None,
    elevation_deg: float = 20.0,
    **kwargs,
) -> list[np.ndarray]:
    """Renders several views of one mesh, building its ray-tracing structure once.

    Views come from ``azimuths_deg`` (all at ``elevation_deg``) when given, else from ``view_angles``.
    Other keyword arguments are those of ``render`` (fov_deg, background, color, supersample, alpha, ...).
    """
    if azimuths_deg is not None:
        angles = [(float(a), float(elevation_deg)) for a in azimuths_deg]
    else:
        angles = view_angles(n_views, seed, elevation_deg)
    scene = _Scene(mesh, kwargs.pop("frame", None), kwargs.pop("backend", "auto"))
    opts = {"fov_deg": 40.0, "distance": None, "background": (255, 255, 255), "color": DEFAULT_COLOR}
    opts |= {"supersample": 1, "alpha": False} | kwargs
    return [scene.draw(size, az, el, **opts) for az, el in angles]


# Timing helper: python -m vatcodec.views.render MESH [--backend B] [--size N] [--out PNG]
if __name__ == "__main__":
    import argparse

    from vatcodec.geometry.mesh_io import load_mesh

    parser = argparse.ArgumentParser(description="Render one view of a mesh and print the time it took.")
    parser.add_argument("mesh")
    parser.add_argument("--backend", default="auto", choices=BACKENDS)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", help="also write the image as PNG")
    args = parser.parse_args()
    loaded = load_mesh(args.mesh)
    start = time.perf_counter()
    img = render(loaded, size=args.size, backend=args.backend)
    print(f"{args.mesh}: {args.size} px, backend {args.backend}: {time.perf_counter() - start:.3f} s")
    if args.out:
        from PIL import Image

        Image.fromarray(img).save(args.out)

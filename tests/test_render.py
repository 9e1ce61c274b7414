"""Tests for the CPU renderer and the gallery builder, on real ray casts of small synthetic meshes."""

import math
import os

import numpy as np
import pytest
import trimesh
from PIL import Image

from vatcodec.errors import VatError
from vatcodec.views.gallery import CAPTION_HEIGHT, FAILED_FILL, TITLE_WIDTH, make_gallery
from vatcodec.views.render import (
    DEFAULT_COLOR,
    default_distance,
    has_embree,
    render,
    render_views,
    unit_frame,
)

WHITE = (255, 255, 255)
# The rtree fallback always runs; Embree only where embreex is installed.
BACKENDS = [
    "triangle",
    pytest.param("embree", marks=pytest.mark.skipif(not has_embree(), reason="no embreex")),
]


def cube(side: float = 1.0) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=(side, side, side))


def coverage(img_HW4: np.ndarray) -> float:
    return float(img_HW4[..., 3].astype(np.float64).sum() / 255.0 / img_HW4[..., 3].size)


def front_face_coverage(side: float, fov_deg: float, distance: float) -> float:
    """Exact image fraction of a centred cube seen head-on: its front face (the silhouette) in perspective."""
    projected = side / (distance - side / 2.0)  # width of the front face at unit depth
    return (projected / (2.0 * math.tan(math.radians(fov_deg) / 2.0))) ** 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_cube_centre_is_object_and_corners_are_background(backend):
    img_HW3 = render(cube(), size=48, backend=backend)
    assert img_HW3.shape == (48, 48, 3) and img_HW3.dtype == np.uint8
    for corner_3 in (img_HW3[0, 0], img_HW3[0, -1], img_HW3[-1, 0], img_HW3[-1, -1]):
        assert tuple(corner_3) == WHITE
    centre_3 = img_HW3[24, 24].astype(int)
    assert tuple(centre_3) != WHITE
    # The shaded colour is the base colour times a luminance in (0, 1]: same hue, not brighter.
    assert (centre_3 <= np.array(DEFAULT_COLOR) + 1).all()


def test_head_on_face_gets_full_colour_and_grazing_face_is_darker():
    img_HW3 = render(cube(), size=64, azimuth_deg=0.0, elevation_deg=0.0).astype(int)
    assert np.abs(img_HW3[32, 32] - np.array(DEFAULT_COLOR)).max() <= 2
    tilted_HW3 = render(cube(), size=64, azimuth_deg=0.0, elevation_deg=30.0).astype(int)
    # At 30 degrees up the top face (cos 60 = 0.5) shows above the front face (cos 30 = 0.87).
    column_H3 = tilted_HW3[:, 32]
    object_rows = np.flatnonzero((column_H3 != 255).any(axis=1))
    top_face_3, front_face_3 = column_H3[object_rows[2]], column_H3[object_rows[-3]]
    assert top_face_3.sum() < front_face_3.sum()


@pytest.mark.parametrize("backend", BACKENDS)
def test_render_is_deterministic(backend):
    mesh = trimesh.creation.icosphere(subdivisions=1)
    first = render(mesh, size=40, azimuth_deg=17.0, elevation_deg=33.0, backend=backend)
    second = render(mesh.copy(), size=40, azimuth_deg=17.0, elevation_deg=33.0, backend=backend)
    assert np.array_equal(first, second)


@pytest.mark.skipif(not has_embree(), reason="no embreex")
def test_backends_agree():
    mesh = trimesh.creation.annulus(r_min=0.2, r_max=0.5, height=0.3)
    a_HW3 = render(mesh, size=48, azimuth_deg=40.0, backend="embree").astype(int)
    b_HW3 = render(mesh, size=48, azimuth_deg=40.0, backend="triangle").astype(int)
    differ_HW = np.abs(a_HW3 - b_HW3).max(axis=-1) > 2
    assert differ_HW.mean() < 0.01  # only rays that graze a triangle edge may disagree


def test_default_distance_fits_the_unit_cube_bounding_sphere():
    # The sphere through the cube's corners (radius sqrt(3)/2) touches the edges of a 60 degree view.
    assert default_distance(60.0) == pytest.approx(math.sqrt(3.0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_image_orientation_and_single_triangle_coverage(backend):
    # A right triangle in the z=0 plane with its right angle at (0, 0): seen from +z (azimuth 0), +x is to the
    # right and +y is up, so the triangle fills the lower-left half of its square on screen.
    tri = trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [0, 1, 0]], faces=[[0, 1, 2]], process=False)
    size, fov = 64, 40.0
    kwargs = {"size": size, "elevation_deg": 0.0, "fov_deg": fov, "alpha": True, "backend": backend}
    front_HW = render(tri, azimuth_deg=0.0, **kwargs)[..., 3] > 0
    half = size // 2
    assert front_HW[half + 4, half - 4] and not front_HW[half - 4, half + 4]  # lower-left in, upper-right out
    back_HW = render(tri, azimuth_deg=180.0, **kwargs)[..., 3] > 0
    assert np.array_equal(back_HW, front_HW[:, ::-1])  # seen from behind: mirrored left-right
    # The plane is at the default distance (computed here independently): the square spans 1/d at unit depth.
    distance = math.sqrt(3.0) / 2.0 / math.sin(math.radians(fov / 2.0))
    square_px = size / distance / (2.0 * math.tan(math.radians(fov / 2.0)))
    assert front_HW.sum() == pytest.approx(square_px**2 / 2.0, abs=2.0 * square_px)


def test_silhouette_coverage_matches_perspective_and_scales_with_size():
    size, fov = 96, 40.0
    distance = math.sqrt(3.0) / 2.0 / math.sin(math.radians(fov / 2.0))
    frame = unit_frame(cube(1.0))  # a shared frame, else the small cube would be scaled back to side 1
    kwargs = {"size": size, "azimuth_deg": 0.0, "elevation_deg": 0.0, "fov_deg": fov, "alpha": True}
    big = coverage(render(cube(1.0), frame=frame, **kwargs))
    small = coverage(render(cube(0.5), frame=frame, **kwargs))
    own = coverage(render(cube(0.5), **kwargs))  # own frame: normalized to side 1 again
    # Pixels along the silhouette edges may go either way: tolerance of one pixel row per side.
    for measured, side in ((big, 1.0), (small, 0.5)):
        expected = front_face_coverage(side, fov, distance)
        edge = 4.0 * math.sqrt(expected) / size
        assert abs(measured - expected) <= edge, (side, measured, expected)
    assert own == big
    # Far away (nearly orthographic) half the side gives a quarter of the area.
    far = {**kwargs, "fov_deg": 0.8, "distance": 100.0}
    ratio = coverage(render(cube(0.5), frame=frame, **far)) / coverage(render(cube(1.0), frame=frame, **far))
    assert ratio == pytest.approx(0.25, abs=0.02)


def test_flipped_normals_render_the_same():
    mesh = cube()
    flipped = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces[:, ::-1], process=False)
    assert np.array_equal(render(mesh, size=40), render(flipped, size=40))


@pytest.mark.parametrize(
    "mesh",
    [
        None,
        trimesh.Trimesh(),
        trimesh.Trimesh(vertices=np.zeros((3, 3)), faces=[[0, 1, 2]], process=False),  # zero extent
        trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [2, 0, 0]], faces=[[0, 1, 2]], process=False),
    ],
    ids=["none", "empty", "point", "zero-area"],
)
def test_nothing_to_draw_gives_the_background(mesh):
    img_HW4 = render(mesh, size=16, background=(10, 20, 30), alpha=True)
    assert img_HW4.shape == (16, 16, 4)
    assert (img_HW4[..., :3] == np.array([10, 20, 30])).all()
    assert (img_HW4[..., 3] == 0).all()


def test_supersampling_gives_fractional_alpha_on_edges_only():
    img_HW4 = render(cube(), size=32, supersample=3, alpha=True)
    alpha_HW = img_HW4[..., 3]
    assert alpha_HW[16, 16] == 255 and alpha_HW[0, 0] == 0
    assert ((alpha_HW > 0) & (alpha_HW < 255)).any()


def test_render_views_fixed_and_seeded():
    mesh = trimesh.creation.box(extents=(1.0, 0.3, 0.6))  # not symmetric under quarter turns
    fixed = render_views(mesh, size=24, azimuths_deg=[0.0, 90.0])
    assert len(fixed) == 2 and not np.array_equal(fixed[0], fixed[1])
    assert np.array_equal(fixed[1], render(mesh, size=24, azimuth_deg=90.0, elevation_deg=20.0))
    seeded = render_views(mesh, 3, 24, seed=7)
    assert len(seeded) == 3
    assert all(np.array_equal(a, b) for a, b in zip(seeded, render_views(mesh, 3, 24, seed=7), strict=True))
    assert not np.array_equal(seeded[0], render_views(mesh, 3, 24, seed=8)[0])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="backend"):
        render(cube(), size=8, backend="opengl")
    with pytest.raises(ValueError, match="fov"):
        render(cube(), size=8, fov_deg=180.0)


def test_gallery_2x3_has_the_expected_size_and_tiles(tmp_path):
    size = 40
    rows = [
        ("cube", [("original", cube()), ("VAT 4 scales, 97 B", cube(0.8)), ("Draco 256 B", None)]),
        (
            "sphere",
            [("original", trimesh.creation.icosphere(1)), ("VAT", None), ("empty", trimesh.Trimesh())],
        ),
    ]
    out = tmp_path / "gallery.png"
    returned = make_gallery(rows, out, size=size)
    with Image.open(out) as image:
        assert image.format == "PNG"
        img_HW3 = np.asarray(image.convert("RGB")).astype(int)
    assert returned == (TITLE_WIDTH + 3 * size, 2 * (size + CAPTION_HEIGHT))
    assert img_HW3.shape == (2 * (size + CAPTION_HEIGHT), TITLE_WIDTH + 3 * size, 3)
    assert os.listdir(tmp_path) == ["gallery.png"]  # the temporary file was renamed, none left behind

    def tile_centre(row, col):
        return img_HW3[row * (size + CAPTION_HEIGHT) + size // 2, TITLE_WIDTH + col * size + size // 2]

    assert tuple(tile_centre(0, 0)) not in (WHITE, FAILED_FILL)  # a rendered cube
    # Row 0, column 2 is the failed tile: a grey fill (sampled off its diagonals and its text).
    assert tuple(img_HW3[6, TITLE_WIDTH + 2 * size + size // 4]) == FAILED_FILL
    assert tuple(tile_centre(1, 2)) == WHITE  # an empty mesh renders as the background


def test_gallery_into_a_missing_folder_raises(tmp_path):
    with pytest.raises(VatError):
        make_gallery([("cube", [("original", cube())])], tmp_path / "missing" / "g.png", size=16)
    assert not (tmp_path / "missing").exists()

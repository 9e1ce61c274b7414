"""Gallery images for benchmarks: one row per shape, one rendered tile per variant (original, VAT, Draco, ...)."""

from __future__ import annotations

import os

import numpy as np
import trimesh
from PIL import Image, ImageDraw, ImageFont

from vatcodec.fileio import atomic_output
from vatcodec.views.render import render, unit_frame

TITLE_WIDTH = 160  # left band holding each row's mesh name
CAPTION_HEIGHT = 22  # band under each tile holding its caption
FONT_SIZE = 13
PAPER = (255, 255, 255)
INK = (30, 30, 30)
FRAME_INK = (225, 225, 225)
FAILED_FILL = (236, 236, 236)
FAILED_INK = (180, 40, 40)

Row = tuple[str, list[tuple[str, trimesh.Trimesh | None]]]


def gallery_size(n_rows: int, n_cols: int, size: int) -> tuple[int, int]:
    """(width, height) in pixels of a gallery with this many rows, columns and tile side."""
    return TITLE_WIDTH + n_cols * size, n_rows * (size + CAPTION_HEIGHT)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 ships a scalable default font
    except TypeError:
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """The text, cut with an ellipsis so that it fits in `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def _failed_tile(size: int, font) -> Image.Image:
    tile = Image.new("RGB", (size, size), FAILED_FILL)
    draw = ImageDraw.Draw(tile)
    # A cross plus the word: still readable when the tile is shrunk in a document.
    draw.line([(0, 0), (size - 1, size - 1)], fill=(210, 210, 210), width=1)
    draw.line([(0, size - 1), (size - 1, 0)], fill=(210, 210, 210), width=1)
    draw.text((size / 2, size / 2), "failed", fill=FAILED_INK, font=font, anchor="mm")
    return tile


def render_gallery(
    rows: list[Row], size: int = 192, shared_frame: bool = True, **render_kwargs
) -> Image.Image:
    """Builds the gallery image in memory; see ``make_gallery``."""
    n_cols = max((len(variants) for _, variants in rows), default=0)
    width, height = gallery_size(len(rows), n_cols, size)
    canvas = Image.new("RGB", (max(width, 1), max(height, 1)), PAPER)
    draw = ImageDraw.Draw(canvas)
    font = _font(FONT_SIZE)
    for r, (name, variants) in enumerate(rows):
        top = r * (size + CAPTION_HEIGHT)
        # The first drawable variant (normally the original) fixes the frame of the whole row, so that a
        # decoded shape that is shifted or scaled shows it instead of being re-centred.
        frame = None
        if shared_frame:
            frame = next((f for _, m in variants if (f := unit_frame(m)) is not None), None)
        label = _fit(draw, name, font, TITLE_WIDTH - 12)
        draw.text((8, top + size / 2), label, fill=INK, font=font, anchor="lm")
        for c, (caption, mesh) in enumerate(variants):
            left = TITLE_WIDTH + c * size
            if mesh is None:
                tile = _failed_tile(size, font)
            else:
                img_HW3 = render(mesh, size=size, frame=frame, **render_kwargs)
                tile = Image.fromarray(np.ascontiguousarray(img_HW3[..., :3]))
            canvas.paste(tile, (left, top))
            # A hairline frame separates neighbouring tiles, whose white backgrounds would otherwise merge.
            draw.rectangle([left, top, left + size - 1, top + size - 1], outline=FRAME_INK)
            text = _fit(draw, caption, font, size - 6)
            draw.text(
                (left + size / 2, top + size + CAPTION_HEIGHT / 2), text, fill=INK, font=font, anchor="mm"
            )
    return canvas


def make_gallery(
    rows: list[Row],
    out_path: str | os.PathLike,
    size: int = 192,
    shared_frame: bool = True,
    **render_kwargs,
) -> tuple[int, int]:
    """Renders a grid of shapes and writes it as a PNG, atomically (temp file in the same folder + rename).

    Args:
        rows: ``(mesh name, [(caption, mesh or None), ...])`` per row, e.g.
            ``("chair", [("original", m0), ("VAT 4 scales, 97 B", m1), ("Draco 256 B", None)])``.
            None draws a grey "failed" tile; rows may have different lengths.
        out_path: Where to write the PNG.
        size: Tile side in pixels.
        shared_frame: Frame every tile of a row with the unit-cube transform of the row's first drawable mesh
            (the original), so offsets and scale errors of a decoded shape stay visible.
        **render_kwargs: Passed to ``vatcodec.views.render.render`` (azimuth_deg, supersample, backend, ...).

    Returns:
        The image's (width, height) in pixels.

    Raises:
        VatError: the output location cannot be written.
    """
    canvas = render_gallery(rows, size=size, shared_frame=shared_frame, **render_kwargs)
    with atomic_output(out_path, suffix=".png") as tmp:
        canvas.save(tmp, format="PNG")
    return canvas.size

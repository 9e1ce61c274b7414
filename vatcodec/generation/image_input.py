"""Condition images: load a photo or render, find the object, centre and scale it on white, as the generator saw.

The generator is trained on renders passed through `prepare_image`, so user images go through the same function:
    - RGBA: the alpha channel is the object mask (a render with alpha, or a cut-out photo); a fully opaque alpha
      is treated as RGB.
    - RGB: the background is taken to be the median colour of the image border; pixels that differ from it by
      more than `threshold` (max over channels, 0-255) are the object. This works for a plain backdrop (studio
      photo, product shot, our renders); it fails on cluttered or gradient backgrounds and on objects that touch
      the border or share the backdrop's colour. Cut the object out (RGBA) in those cases.
The object's bounding box is then centred in a square with `margin` on each side, the background painted white,
and the result resized to `size` pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vatcodec.errors import VatError

IMAGE_SIZE = 96  # side of the generator's input image
MARGIN = 0.08  # fraction of the side left empty around the object
THRESHOLD = 24  # RGB background distance (0-255) above which a pixel belongs to the object


class ImageError(VatError):
    """A condition image cannot be read, or no object can be found in it."""


def load_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 (H, W, 3) or (H, W, 4); grey and palette images become RGB(A)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
            img = ImageOps.exif_transpose(img)  # photos from phones store their rotation in EXIF
            arr = np.asarray(img.convert("RGBA" if has_alpha else "RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from None
    if min(arr.shape[:2]) < 8:
        raise ImageError(f"image {path} is too small ({arr.shape[1]}x{arr.shape[0]}); need at least 8x8")
    return arr


def object_mask(img_HWc: np.ndarray, threshold: int = THRESHOLD) -> np.ndarray:
    """Boolean (H, W) mask of the object: alpha > 127 for RGBA, else distance to the border's median colour."""
    if img_HWc.ndim != 3 or img_HWc.shape[2] not in (3, 4):
        raise ImageError(f"expected an RGB or RGBA image, got an array of shape {img_HWc.shape}")
    if img_HWc.shape[2] == 4:
        mask_HW = img_HWc[..., 3] > 127
        if not mask_HW.all():
            return mask_HW
        # A fully opaque alpha (screenshots, many saved PNGs) says nothing: estimate the background instead.
    rgb_HW3 = img_HWc.astype(np.int16)
    border_N3 = np.concatenate([rgb_HW3[0], rgb_HW3[-1], rgb_HW3[:, 0], rgb_HW3[:, -1]])
    background_3 = np.median(border_N3, axis=0)
    return np.abs(rgb_HW3 - background_3).max(axis=2) > threshold


def prepare_image(
    img_HWc: np.ndarray, size: int = IMAGE_SIZE, margin: float = MARGIN, threshold: int = THRESHOLD
) -> np.ndarray:
    """The object centred and scaled on white, as uint8 (size, size, 3).

    Raises:
        ImageError: no object pixels were found.
    """
    from PIL import Image

    mask_HW = object_mask(img_HWc, threshold)
    if mask_HW.sum() < 4:
        raise ImageError("no object found in the image: it looks like plain background (use RGBA with alpha)")
    rows, cols = np.nonzero(mask_HW)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    rgb_HW3 = img_HWc[..., :3].astype(np.float32)
    if img_HWc.shape[2] == 4 and not (img_HWc[..., 3] > 127).all():
        # Composite over white with the coverage, so anti-aliased edges stay smooth.
        alpha_HW1 = img_HWc[..., 3:4].astype(np.float32) / 255.0
        rgb_HW3 = rgb_HW3 * alpha_HW1 + 255.0 * (1.0 - alpha_HW1)
    else:
        rgb_HW3 = np.where(mask_HW[..., None], rgb_HW3, 255.0)
    crop_hw3 = rgb_HW3[top:bottom, left:right]
    h, w = crop_hw3.shape[:2]
    side = int(np.ceil(max(h, w) / (1.0 - 2.0 * margin)))
    canvas_SS3 = np.full((side, side, 3), 255.0, dtype=np.float32)
    y0, x0 = (side - h) // 2, (side - w) // 2
    canvas_SS3[y0 : y0 + h, x0 : x0 + w] = crop_hw3
    out = Image.fromarray(np.clip(np.rint(canvas_SS3), 0, 255).astype(np.uint8))
    return np.asarray(
        out.resize((size, size), Image.Resampling.BOX if side >= size else Image.Resampling.BILINEAR)
    )


def to_tensor(images_BHW3: np.ndarray):
    """uint8 (B, H, W, 3) images -> float (B, 3, H, W) in [-1, 1], white background at +1."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images_BHW3)).float()
    return (x.permute(0, 3, 1, 2) / 127.5) - 1.0  # (B, 3, H, W)

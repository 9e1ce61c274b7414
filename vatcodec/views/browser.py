"""Headless Chromium for `vatcodec view` pages: screenshots and the DOM after the page's scripts ran.

Used by the browser test and by the README's screenshot, so both see the page the same way. WebGL runs on
SwiftShader (software), so no GPU or display is needed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--hide-scrollbars",
    "--virtual-time-budget=15000",  # let the module script import three.js and draw before the capture
)


def find_chromium() -> str | None:
    """The first Chromium-like browser on PATH, or None."""
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _run(
    exe: str, page: Path, prefix: int | None, size: tuple[int, int], *args: str
) -> subprocess.CompletedProcess:
    url = page.resolve().as_uri() + (f"#prefix={prefix}" if prefix else "")
    cmd = [exe, *FLAGS, f"--window-size={size[0]},{size[1]}", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


def screenshot(
    page: Path, out: Path, prefix: int | None = None, size=(900, 500), exe: str | None = None
) -> Path:
    """A PNG of the page opened at a scale prefix (None: the full stream)."""
    exe = exe or find_chromium()
    if exe is None:
        raise RuntimeError("no Chromium found (apt-get install chromium)")
    _run(exe, page, prefix, size, f"--screenshot={out}")
    if not Path(out).is_file():
        raise RuntimeError(f"Chromium wrote no screenshot of {page}")
    return Path(out)


def dump_dom(page: Path, prefix: int | None = None, size=(900, 500), exe: str | None = None) -> str:
    """The page's DOM as HTML once its scripts ran."""
    exe = exe or find_chromium()
    if exe is None:
        raise RuntimeError("no Chromium found (apt-get install chromium)")
    return _run(exe, page, prefix, size, "--dump-dom").stdout

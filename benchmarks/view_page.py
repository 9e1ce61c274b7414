"""The example chair's `vatcodec view` page: its size and write time, and the README's screenshot of it.

    PYTHONPATH=. python benchmarks/view_page.py [--out docs/images/view-chair.png]

Writes the page at the CLI's defaults (resolution 128, at most 50,000 faces per prefix) with the original beside
it, times it, and screenshots it in headless Chromium (`vatcodec.views.browser`, the browser test's machinery)
at the full stream and at 4 scales. Appends a row to benchmarks/results/view_page.jsonl.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from vatcodec.views import browser
from vatcodec.views.page import write_view_page

RESULTS = Path(__file__).parent / "results" / "view_page.jsonl"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vat", default="tests/golden/chair-vat-s.vat")
    p.add_argument("--original", default="examples/chair.obj")
    p.add_argument("--out", default="docs/images/view-chair.png")
    p.add_argument("--coarse", type=int, default=4, help="the second screenshot's prefix")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "chair.html"
        done = write_view_page(a.vat, page, original=a.original)
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        browser.screenshot(page, out, size=(900, 500))
        browser.screenshot(
            page, out.with_name(out.stem + f"-{a.coarse}scales.png"), prefix=a.coarse, size=(900, 500)
        )
        shot_s = (time.perf_counter() - t) / 2
    row = {
        "vat": a.vat, "page_bytes": done["page_bytes"], "write_s": round(done["seconds"], 2),
        "screenshot_s": round(shot_s, 2), "prefixes": done["prefixes"], "when": time.strftime("%Y-%m-%d %H:%M"),
    }  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps({k: row[k] for k in ("page_bytes", "write_s", "screenshot_s")}))


if __name__ == "__main__":
    main()

"""Load a dashboard file in headless Debian Chromium (Playwright with ``executable_path``):
console errors, every chart's data, a screenshot. ``scripts/chromium.sh`` installs Chromium
when it is missing; nothing is downloaded by Playwright."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# For each Plotly div: its id, trace count and the number of points of each trace.
_CHARTS_JS = """
() => Array.from(document.querySelectorAll('.plotly-graph-div')).map(d => ({
  id: d.id,
  traces: (d.data || []).length,
  points: (d.data || []).map(t => {
    let v = t.type === 'table' ? (t.cells && t.cells.values) : (t.z || t.y || []);
    // Plotly 6+ ships numpy arrays base64-encoded ({dtype, bdata}); plotly.js keeps the
    // decoded typed array in _inputArray.
    if (v && v.bdata !== undefined) v = v._inputArray;
    return v && (Array.isArray(v) || ArrayBuffer.isView(v)) ? v.length : 0;
  }),
}))
"""


def ensure_chromium() -> None:
    if not Path(CHROMIUM).exists():
        subprocess.run(["bash", str(PROJECT / "scripts" / "chromium.sh")], check=True)


def inspect_dashboard(html: Path, screenshot: Path) -> dict[str, Any]:
    """Open ``html`` offline; return the console errors, page errors, failed requests and the
    charts (see ``_CHARTS_JS``); save a full-page screenshot."""
    from playwright.sync_api import sync_playwright

    ensure_chromium()
    errors: list[str] = []
    page_errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html.resolve().as_uri(), wait_until="load")
            page.wait_for_function(
                "document.querySelectorAll('.plotly-graph-div .main-svg').length >= 8",
                timeout=30_000,
            )
            charts = page.evaluate(_CHARTS_JS)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {
        "console_errors": errors,
        "page_errors": page_errors,
        "remote_requests": [u for u in requests if not u.startswith(("file:", "data:"))],
        "charts": charts,
    }


if __name__ == "__main__":  # pragma: no cover - used to refresh docs/dashboard.png
    import json
    import sys

    print(json.dumps(inspect_dashboard(Path(sys.argv[1]), Path(sys.argv[2])), indent=1))

"""The Dagster UI in a real browser: ``dagster dev`` on 127.0.0.1 (the project's ``[tool.dg]``
code location, a temporary ``DAGSTER_HOME``), the asset graph in headless Chromium (Debian's,
driven by Playwright; ``bash scripts/chromium.sh`` installs it), a screenshot kept."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.pipelines.live import PROJECT, VENV_BIN, live_env, prepare_home
from tests.pipelines.world import World

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
CHAIN = (
    "strategy_returns",
    "strategy_vols",
    "risk_parity_weights",
    "correlation_flags",
    "breaker_multipliers",
    "allocations",
    "bar_intents",
    "gated_intents",
    "netted_orders",
    "submitted_orders",
    "fills",
    "attribution",
    "pnl",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dagster dev exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} not up in {timeout_s} s: {log.read_text()[-3000:]}")


def _dismiss_popup(page: Any) -> None:
    """Close the "Join the Dagster community" dialog when it shows (first visit only)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_role("button", name="Skip").click(timeout=5_000)
    except PlaywrightTimeout:
        return


@pytest.mark.slow
def test_asset_graph_shows_the_chain_in_chromium(world: World, tmp_path: Path) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/chromium.sh`")
    from playwright.sync_api import sync_playwright

    home = tmp_path / "dagster_home"
    prepare_home(home)
    env = live_env(home, world.env)
    env["ALLOCATOR_SENSORS_RUNNING"] = "0"
    port = _free_port()
    log = tmp_path / "dagster_dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/server_info", 120, proc, log)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 2400, "height": 1400})
                seen: set[str] = set()
                for group in ("rules", "execution"):
                    page.goto(f"{base}/locations/allocator/asset-groups/{group}")
                    first = "strategy_returns" if group == "rules" else "netted_orders"
                    page.wait_for_selector(f"text={first}", timeout=60_000)
                    _dismiss_popup(page)
                    page.wait_for_timeout(1000)  # let the graph lay out before the picture
                    page.screenshot(path=str(tmp_path / f"asset_graph_{group}.png"))
                    text = page.content()
                    seen |= {name for name in CHAIN if name in text}
                page.goto(f"{base}/asset-groups")
                page.wait_for_selector("text=Global asset lineage", timeout=60_000)
                page.screenshot(path=str(tmp_path / "asset_graph.png"))
            finally:
                browser.close()
        assert sorted(set(CHAIN) - seen) == []
        for name in ("asset_graph_rules", "asset_graph_execution", "asset_graph"):
            assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

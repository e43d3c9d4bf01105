"""What every browser test of the viewer needs: the app on a free localhost port and a headless Debian
Chromium with a fixed viewport (so pixel positions of plot points are the same on every machine)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))


@contextlib.contextmanager
def serve(store: Path, name: str, **create_kwargs: Any) -> Iterator[str]:
    """The viewer for ``store`` on a free localhost port; yields its URL and stops it afterwards."""
    from werkzeug.serving import make_server

    from dash_viewer.app import create_app

    app = create_app(store, poll_ms=700, stat_ttl=0.2, run_lookup=False, **create_kwargs)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@contextlib.contextmanager
def chromium(profile: Path, width: int, height: int, downloads: Path | None = None) -> Iterator[Any]:
    """A headless Chromium driven by selenium, its viewport fixed at ``width`` x ``height``; skips the test
    when Chromium or its driver is not installed (``make test`` installs them)."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(f"browser test needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    if downloads is not None:
        downloads.mkdir(parents=True, exist_ok=True)
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
        )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd(  # a fixed viewport whatever the window decorations
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    if downloads is not None:
        with contextlib.suppress(Exception):  # older drivers: the download preference above is enough
            driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        yield driver
    finally:
        driver.quit()

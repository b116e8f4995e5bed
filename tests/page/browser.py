"""Debian's chromium, headless, driven by selenium through Debian's chromedriver.

Both binaries come from apt (`.ci/run` installs them when missing); selenium is pointed at
them, so it never looks for, or downloads, a browser or a driver of its own. Without them the
browser tests are skipped on a developer's machine and fail in CI (`CI=true`), where a skip
would hide that the page was never tested.
"""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path(os.environ.get("TOUCHFLOW_CHROMIUM") or "/usr/bin/chromium")
CHROMEDRIVER = Path(os.environ.get("TOUCHFLOW_CHROMEDRIVER") or "/usr/bin/chromedriver")


def missing() -> list[str]:
    """The binaries that are not there (empty when the browser tests can run)."""
    return [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not (p.exists() or shutil.which(p))]


def require_chromium() -> None:
    """Skip without chromium on a developer's machine; fail in CI."""
    gone = missing()
    if not gone:
        return
    why = f"{', '.join(gone)} missing: apt-get install chromium chromium-driver"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the browser tests: {why}")
    pytest.skip(why)


@contextmanager
def headless(width: int = 1400, height: int = 1000) -> Iterator[WebDriver]:
    """A headless chromium with its console log kept (read with `console_errors`)."""
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI containers, where the sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def console(driver: WebDriver) -> list[dict[str, Any]]:
    """The browser console's entries since the last call (reading empties the buffer)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")
    return entries


def console_errors(driver: WebDriver) -> list[str]:
    return [str(e["message"]) for e in console(driver) if e["level"] == "SEVERE"]


def wait_ready(driver: WebDriver, timeout: float = 20.0, refreshes: int = 1) -> None:
    """Until the page has drawn `refreshes` successful answers (or says why it could not)."""

    def drawn(d: Any) -> bool:
        body = d.find_element("tag name", "body")
        if body.get_attribute("data-state") == "error":
            msg = "the page shows an error: " + d.find_element("id", "status").text
            raise AssertionError(msg)
        return int(body.get_attribute("data-refreshes") or 0) >= refreshes

    WebDriverWait(driver, timeout).until(drawn)

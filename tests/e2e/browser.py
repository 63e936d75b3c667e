"""A real headless Chromium (Debian's chromium, driven by Selenium through Debian's
chromedriver) for the tests of `skiff dashboard`, and the page's elements as a
test reads them. Chromium, chromedriver and the page share the network
namespace of the thread that starts them (the tests run them inside the lab's)."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = "needs Debian's chromium and chromium-driver (scripts/install.sh installs them)"


def has_browser() -> bool:
    if not (CHROMIUM and CHROMEDRIVER):
        return False
    try:
        import selenium.webdriver  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """A headless Chromium driven by Selenium, quit afterwards (also on failure)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def eventually(check: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    """Poll `check` until it is true (the page redraws on every watch event)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


def click(driver: Any, selector: str) -> None:
    """Click what the selector finds; an element found a moment ago may have been
    replaced by a redraw: find it again then."""
    from selenium.common.exceptions import StaleElementReferenceException

    def once() -> bool:
        try:
            driver.find_element("css selector", selector).click()
        except StaleElementReferenceException:
            return False
        return True

    eventually(once, f"a click on {selector}", timeout=5)


def text(driver: Any, element_id: str) -> str:
    """An element's text; "" when a redraw replaced it just then (the caller polls)."""
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return str(driver.find_element("id", element_id).text)
    except StaleElementReferenceException:
        return ""


def count(driver: Any, selector: str) -> int:
    return len(driver.find_elements("css selector", selector))

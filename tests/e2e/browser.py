"""A real headless Chromium (Debian's chromium, driven by Selenium through Debian's
chromedriver) for the tests of `skiff dashboard`, and the page's elements as a
test reads them. Chromium, chromedriver and the page share the network
namespace of the thread that starts them (the tests run them inside the lab's)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.integration.controllers.test_workloads import eventually as poll

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
    return poll(check, timeout, what)


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


def endpoints(driver: Any, service_key: str) -> int:
    """How many endpoints (addresses with a pod) the page lists under one Service."""
    script = (
        "const label = document.querySelector(`#services [data-key='${arguments[0]}']`);"
        "if (!label) return 0;"
        "return [...label.closest('li').querySelectorAll('ul li')]"
        ".filter((li) => li.textContent.includes('(')).length;"
    )
    return int(driver.execute_script(script, service_key) or 0)

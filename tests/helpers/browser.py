"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) through Selenium, opening a page that
``segkit export --format web`` wrote, served from 127.0.0.1 by :func:`segkit.export.web.serve`.

    with served(site) as url, Browser() as browser:
        browser.open(f"{url}/index.html?threads=1")
        result = browser.call("segmentUrl", "image.png")   # window.segkit.segmentUrl(...) resolved

Used by tests/export/test_web.py and benchmarks/browser.py.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = "chromedriver"


def missing() -> str | None:
    """Why the browser cannot run here (for a skip), or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if _binary() is None:
        return "no Chromium here (Debian: apt-get install chromium chromium-driver; .ci/run does)"
    if shutil.which(DRIVER) is None:
        return "no chromedriver here (Debian: apt-get install chromium-driver; .ci/run does)"
    if not (REPO / "node_modules" / "onnxruntime-web" / "package.json").is_file():
        return "node_modules/onnxruntime-web is missing: run `npm ci` in the checkout (.ci/run does)"
    return None


def _binary() -> str | None:
    return next((path for name in CHROMIUM if (path := shutil.which(name))), None)


@contextlib.contextmanager
def served(folder: str | Path, *, isolated: bool = True) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` serving ``folder`` (with the cross-origin isolation headers unless not
    ``isolated``) from a thread, for the block."""
    from segkit.export.web import serve

    server = serve(folder, isolated=isolated)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Browser:
    """One headless Chromium session; :meth:`call` runs ``window.segkit.<name>(*args)`` and returns its result."""

    def __init__(self, timeout_s: float = 300, width: int = 1000, height: int = 900) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = _binary() or "chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(shutil.which(DRIVER)), options=options)
        self.driver.set_script_timeout(timeout_s)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.driver.quit()

    def open(self, url: str) -> dict[str, Any]:
        """Load ``url`` and wait for the model: the page's ``info()`` (ep, threads, isolated, ...)."""
        self.driver.get(url)
        return self.call("ready")

    def call(self, name: str, *args: Any) -> Any:
        """``await window.segkit[name](...args)`` (or ``await window.segkit[name]`` for a promise); a rejection
        raises RuntimeError with the page's message and the browser log."""
        script = (
            "const done = arguments[arguments.length - 1]; const name = arguments[0];"
            "const args = Array.from(arguments).slice(1, -1);"
            "if (!window.segkit) { done({__error: 'window.segkit is missing: ' + (window.segkitError || 'no script')}); return; }"
            "const target = window.segkit[name];"
            "Promise.resolve(typeof target === 'function' ? target(...args) : target)"
            ".then(done, (e) => done({__error: String(e && e.stack || e)}));"
        )
        result = self.driver.execute_async_script(script, name, *args)
        if isinstance(result, dict) and "__error" in result:
            log = "\n".join(entry["message"] for entry in self.driver.get_log("browser"))
            raise RuntimeError(f"window.segkit.{name} failed: {result['__error']}\n{log}")
        return result

    def screenshot(self, element_id: str) -> bytes:
        """PNG of one element of the page."""
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id).screenshot_as_png

    def text(self, element_id: str) -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id).text

"""Headless Chromium for the widget tests: the distribution's browser, driven by Playwright.

Playwright's own browser download is not used (and cannot work offline); `make test`
installs Debian's `chromium` when it is missing. `LEPTON_CHROMIUM` points elsewhere.
"""

import os
import shutil
from typing import Any, Optional, Text

import pytest

# Without the background-networking flags Chromium keeps trying to reach Google's
# servers, which a closed network refuses many times a second.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> Optional[Text]:
    return os.environ.get("LEPTON_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


async def launch_chromium(playwright: Any) -> Any:
    """A headless Chromium, or a skip naming the install command when there is none."""
    path = chromium_path()
    if path is None:
        pytest.skip("Chromium is not installed: `apt-get install chromium` (make test does it when run as root)")
    return await playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)

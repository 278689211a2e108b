"""Headless Chromium for the widget tests: the distribution's browser, driven by Playwright.

Playwright's own browser download is not used (and cannot work offline); `make test`
installs Debian's `chromium` when it is missing. `LEPTON_CHROMIUM` points elsewhere.
"""

import os
import shutil
from typing import Any, Optional, Text

from tests.services import require_service

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
    """A headless Chromium; without one, a skip (a failure under CI) naming the install command."""
    path = chromium_path()
    if path is None:
        require_service("Chromium is not installed: run `make browser` as root (it installs Debian's chromium)")
    return await playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)

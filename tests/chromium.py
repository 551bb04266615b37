"""Debian's Chromium for the Playwright tests (Playwright's own browser download does not work
here); set COLLAB_QA_CHROMIUM to use another binary."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Dialog

CHROMIUM = Path(os.environ.get("COLLAB_QA_CHROMIUM") or shutil.which("chromium")
                or "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def record_and_dismiss(messages: list[str]) -> Callable[[Dialog], None]:
    """A dialog handler that notes each dialog's message (an alert means markup ran) and
    dismisses it."""
    def handle(dialog: Dialog) -> None:
        messages.append(dialog.message)
        dialog.dismiss()
    return handle

"""Open a local HTML file in headless Chromium through its command line: the DOM after the page's
scripts ran, every console message the page produced, and a screenshot. Tests that need it skip
with the reason when no Chromium is installed (Debian: apt-get install chromium)."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
# Chromium logs each console message on stderr as "...:INFO:CONSOLE:<line>] "<message>", source: <url> (<line>)"
CONSOLE = re.compile(r":CONSOLE[^\]]*\] (.*)$", re.MULTILINE)


def find_chromium() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="no headless Chromium on PATH "
                                    "(apt-get install chromium) to load the HTML report in")


@dataclass
class Loaded:
    dom: str
    console: list[str]  # every console message: log lines, uncaught errors, failed loads


def _run(page: Path, *flags: str, timeout: int = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        command = [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *flags, page.resolve().as_uri()]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def load(page: Path) -> Loaded:
    """``page`` loaded and its scripts run: the serialised DOM and the console messages."""
    done = _run(page, "--dump-dom")
    assert done.returncode == 0, f"chromium failed on {page}: {done.stderr[-2000:]}"
    return Loaded(done.stdout, CONSOLE.findall(done.stderr))


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 2400) -> Path:
    done = _run(page, f"--screenshot={out}", f"--window-size={width},{height}", "--hide-scrollbars")
    assert done.returncode == 0 and out.is_file(), f"chromium made no screenshot of {page}: {done.stderr[-2000:]}"
    return out

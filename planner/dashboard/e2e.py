"""The real dashboard in a real browser, for the end-to-end test and scripts/screenshots.py: start
`streamlit run streamlit_app.py` on a free loopback port and drive it with Playwright in headless Debian
Chromium (/usr/bin/chromium, installed by scripts/ensure_chromium.sh). Playwright is imported lazily."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# No network here: without these chromium waits on updates, sync and QUIC probes.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(timeout_s: float = 60):
    """Yield the base URL of a fresh server; stop it afterwards. Its output is kept for the error message."""
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise RuntimeError("streamlit did not start:\n" + log.read().decode(errors="replace")[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def chromium(viewport=(1500, 1100)):
    """A headless chromium context with a fresh profile folder (removed afterwards)."""
    from playwright.sync_api import sync_playwright
    profile = tempfile.mkdtemp(prefix="radplan-chromium-")
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                       args=CHROMIUM_ARGS,
                                                       viewport={"width": viewport[0], "height": viewport[1]})
            try:
                yield ctx
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def settle(page, timeout_ms: int = 60_000) -> None:
    """Wait until the script run finished (the app root reports script state 'notRunning') three times,
    300 ms apart, so that a rerun a widget change just requested is not mistaken for the finished one."""
    for _ in range(2):
        page.wait_for_selector(IDLE, timeout=timeout_ms)
        page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, timeout=timeout_ms)
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout_ms)      # every page has a title

"""Debian's chromium, headless, driven by Selenium through Debian's
chromedriver (nothing downloaded), for the tests that look at a page:
test_console.py (the web console) and test_metrics.py (the Grafana
dashboard drawn from its JSON).

Whatever happens, no chromium or chromedriver process outlives
`headless_chromium`: chromedriver runs in a session of its own, and the
exit kills every process of that session or naming the browser's profile
directory (chromium's crash handlers start sessions of their own, but
their database is in the profile), then checks that none is left."""

import contextlib
import os
import shutil
import signal
import time

import pytest

from conftest import make_temp_dir, remove_temp_dir

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
PROCESS_GONE_TIMEOUT_S = 10

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed",
)


def session_processes(session_id, marker):
    """Pids of live processes in session `session_id` or whose command line
    holds `marker` (the browser's own profile directory)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        # After the command name: state, ppid, pgrp, session.
        if fields[0] == "Z":
            continue
        if int(fields[3]) == session_id or marker.encode() in cmdline:
            found.add(int(entry))
    return found


def kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@contextlib.contextmanager
def headless_chromium(window):
    """A headless chromium under chromedriver with a `window` (width,
    height) in pixels; on exit every process of theirs is gone."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = make_temp_dir("shoal-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-breakpad",
        "--disable-background-networking",
        f"--window-size={window[0]},{window[1]}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    # HOME and XDG_CONFIG_HOME in the profile: chromium's crash handlers,
    # which start sessions of their own, then name the profile too.
    env = {**os.environ, "HOME": profile, "XDG_CONFIG_HOME": profile}
    service = Service(executable_path=CHROMEDRIVER, popen_kw={"start_new_session": True}, env=env)
    driver = None
    try:
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_window_size(*window)
        yield driver
    finally:
        session = service.process.pid if service.process else -1
        if driver is not None:
            try:
                driver.quit()
            except Exception:
                pass
        try:
            service.stop()
        except Exception:
            pass
        kill_all(session_processes(session, profile))
        left = []
        deadline = time.monotonic() + PROCESS_GONE_TIMEOUT_S
        while time.monotonic() < deadline:
            left = session_processes(session, profile)
            if not left:
                break
            kill_all(left)
            time.sleep(0.1)
        remove_temp_dir(profile)
        assert not left, f"chromium or chromedriver processes left: {sorted(left)}"

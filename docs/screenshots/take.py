"""Screenshots of the chat and the run inspector on the embedded defaults (packaged model,
similar-users retrieval on), as in the README:

    .venv/bin/python docs/screenshots/take.py [--port 8766]

Starts `mmsrarec serve` with a fresh in-memory thread store and a fresh keyword cache (so the
critic's rounds show), chats once in headless Chromium, and saves `chat.png` and
`inspector.png` beside this file. Needs Debian's `chromium` and `chromium-driver`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))
from headless_chromium import start_chromium  # noqa: E402  (the browser tests' set-up)

MESSAGE = "loved Alien and Star Wars, want something tense but not gory"


def wait_for(driver: webdriver.Chrome, css: str, timeout: float) -> object:
    return WebDriverWait(driver, timeout).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, css))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    work = Path(tempfile.mkdtemp())
    cache = Path(os.environ.get("MMSRAREC_CACHE_DIR", "~/.cache/mmsrarec")).expanduser()
    (work / "cache").mkdir()
    (work / "cache" / "models").symlink_to(cache / "models")  # converted weights, not keywords
    env = {
        **os.environ,
        "MMSRAREC_CACHE_DIR": str(work / "cache"),
        "MMSRAREC_DATA_DIR": str(cache / "data"),
    }
    command = [str(Path(sys.executable).with_name("mmsrarec")), "serve", "--port", str(args.port)]
    server = subprocess.Popen([*command, "--in-memory"], env=env)
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(2)
        driver = start_chromium(work / "profile")
        try:
            driver.get(url + "/")
            wait_for(driver, "#message", 30).send_keys(MESSAGE)
            driver.find_element(By.ID, "send").click()
            wait_for(driver, ".rec .title", 600)
            driver.save_screenshot(str(HERE / "chat.png"))
            driver.find_elements(By.CSS_SELECTOR, ".trace-link")[-1].click()
            wait_for(driver, "#timings tr:nth-child(2)", 60)
            driver.set_window_size(1200, 1800)
            driver.save_screenshot(str(HERE / "inspector.png"))
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"saved {HERE / 'chat.png'} and {HERE / 'inspector.png'}")


if __name__ == "__main__":
    main()

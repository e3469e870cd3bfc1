"""Sessions and conversations survive a server restart, on both stores: a real browser
(headless Chromium) chats with the app served by a uvicorn subprocess, the process is stopped
and started again on the same data (SQLite run dir, or the same PostgreSQL database), and the
reloaded page still shows, and continues, its conversation. When the server no longer knows
the session, the page says so plainly and starts a new conversation.

Skipped only where Chromium (or, for the PostgreSQL case, PostgreSQL) is not installed."""

from __future__ import annotations

import pytest
from headless_chromium import installed, start_chromium
from services import AppServer

from mmsrarec.config import Settings
from mmsrarec.database import open_tables

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not installed(),
        reason="headless Chromium not installed: apt-get install chromium chromium-driver",
    ),
]

FIRST = "loved Movie 3 and Movie 12, want a space opera but not horror"


@pytest.fixture(params=["sqlite", "postgres"])
def app_env(request, tmp_path, tiny_source, tiny_encoder_dir) -> dict[str, str]:
    from mmsrarec.data import prepare_dataset

    folder, _ = prepare_dataset(tiny_source, tmp_path / "data", negatives=5)
    env = {
        "MMSRAREC_DATA_DIR": str(tmp_path / "data"),
        "MMSRAREC_DATASET": folder.name,
        "MMSRAREC_RUN_DIR": str(tmp_path / "runs"),
        "MMSRAREC_CACHE_DIR": str(tmp_path / "cache"),
        "MMSRAREC_TEST_ENCODER": str(tiny_encoder_dir),
    }
    if request.param == "postgres":
        env["MMSRAREC_DATABASE_URL"] = request.getfixturevalue("database_url")
    return env


@pytest.fixture
def browser(tmp_path):
    driver = start_chromium(tmp_path / "chromium-profile")
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(driver, css: str, timeout: float = 60):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, css))
    )


def send(browser, text: str) -> None:
    """Type `text`, send it, wait for the answer (or an error)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    answers = "#log .msg.assistant, #log .msg.error"
    before = len(browser.find_elements(By.CSS_SELECTOR, answers))
    wait_for(browser, "#message").send_keys(text)
    browser.find_element(By.ID, "send").click()
    WebDriverWait(browser, 60).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, answers)) > before,
        message=f"no answer; the page shows: {browser.find_element(By.ID, 'log').text!r}",
    )
    assert not browser.find_elements(By.CSS_SELECTOR, "#log .msg.error"), texts(
        browser, "#log .msg.error"
    )


def texts(browser, css: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, css)]


def test_the_conversation_survives_a_server_restart(app_env, browser, tmp_path):
    server = AppServer(app_env, log=tmp_path / "server.log")
    try:
        browser.get(server.url + "/")
        send(browser, FIRST)
        titles = texts(browser, ".rec .title")
        assert titles and all(t.startswith("Movie ") for t in titles)
        thread = browser.execute_script("return sessionStorage.getItem('thread')")
        cookie = browser.get_cookie("mmsrarec_session")["value"]

        server.stop()
        server.start()
        browser.refresh()
        wait_for(browser, "#log .msg.user")
        assert texts(browser, "#log .msg.user") == [FIRST]  # restored from the store
        assert len(texts(browser, "#log .msg.assistant")) == 2  # greeting + the reply
        assert texts(browser, "#log .msg.notice") == []
        assert browser.get_cookie("mmsrarec_session")["value"] == cookie  # same session

        send(browser, "something older")  # continues the same thread: turn 2
        assert browser.execute_script("return sessionStorage.getItem('thread')") == thread
        links = browser.find_elements("css selector", ".trace-link")
        assert links and links[-1].get_attribute("href").endswith(f"/inspect/{thread}#turn-2")

        # The server forgets every session (as eviction would): the page says so plainly.
        server.stop()
        settings = Settings(
            run_dir=app_env["MMSRAREC_RUN_DIR"], database_url=app_env.get("MMSRAREC_DATABASE_URL")
        )
        open_tables(settings, "chat").run("DELETE FROM web_sessions")
        server.start()
        browser.refresh()
        notice = wait_for(browser, "#log .msg.notice")
        assert "no longer attached" in notice.text
        assert texts(browser, "#log .msg.user") == []
        assert browser.get_cookie("mmsrarec_session")["value"] != cookie  # a new session
        send(browser, FIRST)
        assert texts(browser, ".rec .title")
        second = browser.execute_script("return sessionStorage.getItem('thread')")
        assert second != thread

        # Forgotten while the page is open: the next message gets a 401, the page takes a new
        # session, says so, and answers in a new conversation.
        cookie = browser.get_cookie("mmsrarec_session")["value"]
        open_tables(settings, "chat").run("DELETE FROM web_sessions")
        send(browser, "something older")
        assert len(texts(browser, "#log .msg.notice")) == 2
        assert browser.get_cookie("mmsrarec_session")["value"] != cookie
        assert browser.execute_script("return sessionStorage.getItem('thread')") not in (
            thread,
            second,
        )
    finally:
        server.stop()

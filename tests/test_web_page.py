"""The gateway's browser page (``GET /``) in headless Debian Chromium: two people chatting, presence,
leave notices, direct messages, banners, untrusted text, auth with a token, a foreign origin refused,
and a resume after the gateway restarts. Screenshots go to each test's temp dir."""

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from gateway.auth import mint_token
from tests.servers import GatewayProcess, StartGateway, free_port

SECRET = "a-test-secret-of-at-least-32-bytes"
HOSTILE = "<img src=x onerror=alert(1)>"
DIALOGS: list[str] = []
"""Every alert() any page opened: a dialog would mean chat text ran as code (Playwright dismisses it)."""

pytestmark = pytest.mark.slow


@pytest.fixture
def pages(browser: Browser) -> Iterator[list[Page]]:
    """Fresh pages, each in its own context (its own cookies and storage), closed afterwards."""
    opened: list[Page] = []
    yield opened
    for page in opened:
        page.context.close()


def open_chat(browser: Browser, pages: list[Page], url: str, fragment: str) -> Page:
    page = browser.new_context(viewport={"width": 1100, "height": 700}).new_page()
    page.on("dialog", lambda dialog: DIALOGS.append(dialog.message))
    pages.append(page)
    page.goto(f"{url}/#{fragment}")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=10_000)
    return page


def log_texts(page: Page) -> list[str]:
    return page.locator("#log li .text").all_inner_texts()


def send(page: Page, text: str) -> None:
    page.locator("#message").fill(text)
    page.locator("#message").press("Enter")


def test_two_people_chat_see_presence_leave_and_direct_messages(
    browser: Browser, pages: list[Page], gateway: GatewayProcess, tmp_path: Path
) -> None:
    alice = open_chat(browser, pages, gateway.http_url, "name=alice")
    bob = open_chat(browser, pages, gateway.http_url, "name=bob")
    expect(alice.locator("#presence li")).to_have_count(2)
    expect(alice.locator("#presence")).to_contain_text("bob")
    expect(alice.locator("#log")).to_contain_text("bob joined chat:lobby")

    send(alice, "hello bob")
    send(bob, "hi alice")
    for page in (alice, bob):
        expect(page.locator("#log li.own, #log li.other")).to_have_count(2)
        assert log_texts(page) == ["hello bob", "hi alice"]
    expect(alice.locator("#log li.own .text")).to_have_text("hello bob")
    expect(alice.locator("#log li.other .meta")).to_contain_text("bob ·")

    alice.locator("#presence li", has_text="bob").click()
    send(alice, "just for you")
    expect(bob.locator("#log li.direct")).to_contain_text("just for you")
    expect(bob.locator("#log li.direct .meta")).to_contain_text("direct from alice")

    httpx.post(
        f"{gateway.http_url}/api/publish/notify:alerts",
        json={"level": "warning", "title": "CPU hot"},
        timeout=5,
    ).raise_for_status()
    expect(alice.locator("#banners .banner.warning")).to_contain_text("CPU hot", timeout=15_000)
    alice.screenshot(path=str(tmp_path / "alice.png"))

    bob.context.close()
    pages.remove(bob)
    expect(alice.locator("#log")).to_contain_text("bob left chat:lobby")
    expect(alice.locator("#presence li")).to_have_count(1)
    alice.screenshot(path=str(tmp_path / "alice-after-leave.png"))
    assert (tmp_path / "alice-after-leave.png").stat().st_size > 0


def test_hostile_text_is_shown_literally_and_runs_nothing(
    browser: Browser, pages: list[Page], gateway: GatewayProcess, tmp_path: Path
) -> None:
    mallory = open_chat(browser, pages, gateway.http_url, "name=mallory")
    victim = open_chat(browser, pages, gateway.http_url, "name=victim")
    send(mallory, HOSTILE)
    expect(victim.locator("#log li.other .text")).to_have_text(HOSTILE)
    assert victim.locator("#log img").count() == 0
    victim.wait_for_timeout(300)
    assert DIALOGS == []
    victim.screenshot(path=str(tmp_path / "hostile.png"))


def test_history_on_join_and_room_switch(
    browser: Browser, pages: list[Page], gateway: GatewayProcess
) -> None:
    for text in ("first", "second"):
        httpx.post(
            f"{gateway.http_url}/api/publish/chat:ops", json={"text": text}, timeout=5
        ).raise_for_status()
    page = open_chat(browser, pages, gateway.http_url, "name=olga")
    page.locator("#room").fill("ops")
    page.locator("#settings button").click()
    expect(page.locator("#log li.other .text")).to_have_text(["first", "second"])
    expect(page.locator("#log")).to_contain_text("You joined chat:ops")


def test_auth_with_a_token_in_the_fragment_never_in_a_url(
    browser: Browser, pages: list[Page], start_gateway: StartGateway
) -> None:
    gateway = start_gateway(env={"PULSE_SECRET": SECRET})
    token = mint_token(SECRET, "alice", ttl=600)
    urls: list[str] = []
    page = browser.new_context().new_page()
    pages.append(page)
    page.on("request", lambda request: urls.append(request.url))
    page.on("websocket", lambda ws: urls.append(ws.url))
    page.goto(f"{gateway.http_url}/#token={token}")
    expect(page.locator("#status")).to_have_text("connected as alice", timeout=10_000)
    assert "token" not in page.url, "the fragment is cleared from the address bar"
    send(page, "authenticated hello")
    expect(page.locator("#log li.own .text")).to_have_text("authenticated hello")
    assert urls and not [url for url in urls if token in url]

    anonymous = browser.new_context().new_page()
    pages.append(anonymous)
    anonymous.goto(gateway.http_url)
    expect(anonymous.locator("#status")).to_have_attribute("data-state", "disconnected", timeout=15_000)


@contextmanager
def probe_site(html: str, port: int) -> Iterator[str]:
    """Another origin on loopback (its own port) serving ``html``: a page the gateway did not serve."""
    body = html.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


PROBE = """<!doctype html><script>
    const ws = new WebSocket("%s");
    window.result = "pending";
    ws.onmessage = (e) => { window.result = "open: " + e.data.slice(0, 20); };
    ws.onclose = (e) => { if (window.result === "pending") window.result = "closed " + e.code; };
</script>"""


def test_a_page_from_a_foreign_origin_cannot_open_the_websocket(
    browser: Browser, pages: list[Page], start_gateway: StartGateway
) -> None:
    # Two sites on loopback ports of their own; only one is listed in PULSE_ALLOWED_ORIGINS.
    friend_port, evil_port = free_port(), free_port()
    gateway = start_gateway(env={"PULSE_ALLOWED_ORIGINS": f"http://127.0.0.1:{friend_port}"})
    results = {}
    for name, port in (("friend", friend_port), ("evil", evil_port)):
        with probe_site(PROBE % gateway.ws_url, port=port) as origin:
            page = browser.new_context().new_page()
            pages.append(page)
            page.goto(f"{origin}/")
            page.wait_for_function("() => window.result !== 'pending'", timeout=10_000)
            results[name] = page.evaluate("() => window.result")
    assert results["friend"].startswith('open: {"type":"welcome'), results
    # Refused with HTTP 403 before the WebSocket was accepted: the browser only reports 1006.
    assert results["evil"] == "closed 1006", results


def test_the_page_reconnects_and_resumes_without_duplicates(
    browser: Browser, pages: list[Page], gateway: GatewayProcess, tmp_path: Path
) -> None:
    page = open_chat(browser, pages, gateway.http_url, "name=rita")
    send(page, "before the restart")
    expect(page.locator("#log li.own .text")).to_have_text(["before the restart"])

    gateway.stop()
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting", timeout=10_000)
    gateway.start()
    httpx.post(f"{gateway.http_url}/api/publish/chat:lobby", json={"text": "while away"}, timeout=5)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=20_000)
    expect(page.locator("#log li.other .text")).to_have_text(["while away"], timeout=10_000)
    send(page, "after the restart")
    expect(page.locator("#log li.own .text")).to_have_text(["before the restart", "after the restart"])
    page.wait_for_timeout(500)
    assert log_texts(page) == ["before the restart", "while away", "after the restart"]
    page.screenshot(path=str(tmp_path / "resumed.png"))


AT_BOTTOM_JS = """() => {
    const log = document.getElementById("log");
    return log.scrollTop + log.clientHeight >= log.scrollHeight - 5;
}"""


def test_auto_scroll_follows_new_messages_until_the_reader_scrolls_up(
    browser: Browser, pages: list[Page], gateway: GatewayProcess
) -> None:
    page = open_chat(browser, pages, gateway.http_url, "name=sam")
    url = f"{gateway.http_url}/api/publish/chat:lobby"
    httpx.post(url, json=[{"text": f"line {i}"} for i in range(40)], timeout=5).raise_for_status()
    expect(page.locator("#log li.other")).to_have_count(40)
    overflow = "() => { const l = document.getElementById('log'); return l.scrollHeight - l.clientHeight; }"
    assert page.evaluate(overflow) > 500, "the log must overflow for this test to mean anything"
    page.wait_for_function(AT_BOTTOM_JS)  # it followed the newest line

    page.evaluate("() => { document.getElementById('log').scrollTop = 0; }")
    httpx.post(url, json={"text": "while reading old lines"}, timeout=5).raise_for_status()
    expect(page.locator("#log li.other").last).to_have_text(re.compile("while reading old lines"))
    assert page.evaluate("() => document.getElementById('log').scrollTop") == 0, "kept the reader's place"

    page.evaluate("() => { const l = document.getElementById('log'); l.scrollTop = l.scrollHeight; }")
    httpx.post(url, json={"text": "back at the bottom"}, timeout=5).raise_for_status()
    expect(page.locator("#log li.other").last).to_have_text(re.compile("back at the bottom"))
    page.wait_for_function(AT_BOTTOM_JS)


def test_the_page_loads_without_a_failed_request_or_console_error(
    gateway: GatewayProcess, pages: list[Page], browser: Browser
) -> None:
    """Every request of the page succeeds, its icon included, and the console stays clean."""
    failed: list[str] = []
    errors: list[str] = []
    page = browser.new_context().new_page()
    pages.append(page)
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{gateway.http_url}/#name=ann")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=10_000)
    icon = httpx.get(f"{gateway.http_url}/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    page.wait_for_timeout(500)
    assert failed == [] and errors == []

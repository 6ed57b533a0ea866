"""The page's troubles in a real browser: the microphone refused, no microphone, the server going away
and coming back. Run by ``tests/test_browser.py`` inside a loopback-only network namespace; writes what
the page said at each step to OUT.json, and a screenshot of the page with the server gone to OUT.png.

    python -m tests.page_errors MICROPHONE.wav OUT.json
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from playwright.async_api import Page, Playwright, async_playwright

from benchmarks.browser import chromium_args, launch
from realtime.models import Models
from realtime.server import RealtimeServer, ServerOptions

TIMEOUT_MS = 60_000


async def notice(page: Page) -> str:
    """The next message the page shows (it hides the last one when the user tries again)."""
    await page.wait_for_selector("#notice:not([hidden])", timeout=TIMEOUT_MS)
    return await page.inner_text("#notice-text")


async def refusal(playwright: Playwright, url: str, args: list[str]) -> str:
    browser = await launch(playwright, args)
    try:
        page = await browser.new_page()
        await page.goto(url)
        await page.click("#talk")
        return await notice(page)
    finally:
        await browser.close()


async def run(microphone: Path, screenshot: Path) -> dict[str, object]:
    models = Models.load_embedded()
    said: dict[str, object] = {}
    server = await RealtimeServer(models, ServerOptions(port=0)).start()
    url, port = server.url, server.port
    async with async_playwright() as playwright:
        said["refused"] = await refusal(playwright, url, chromium_args(microphone, allowed=False))
        said["no_microphone"] = await refusal(playwright, url, chromium_args(None))
        browser = await launch(playwright, chromium_args(microphone))
        try:
            page = await browser.new_page()
            await page.goto(url)
            await page.click("#talk")
            await page.wait_for_selector("#status[data-state=listening]", timeout=TIMEOUT_MS)
            await server.stop()
            said["server_stopped"] = await notice(page)
            await page.click("#notice-action")
            said["server_gone"] = await notice(page)
            await page.screenshot(path=str(screenshot))
            server = await RealtimeServer(models, ServerOptions(port=port)).start()
            await page.click("#notice-action")
            await page.wait_for_selector("#status[data-state=listening]", timeout=TIMEOUT_MS)
            said["reconnected"] = await page.inner_text("#status-text")
            said["sessions"] = await page.evaluate(
                "window.voiceAgent.events.filter((e) => e.event.type === 'session.created').length"
            )
        finally:
            await browser.close()
            await server.stop()
    return said


if __name__ == "__main__":
    out = Path(sys.argv[2])
    out.write_text(json.dumps(asyncio.run(run(Path(sys.argv[1]).resolve(), out.with_suffix(".png"))), indent=2) + "\n")

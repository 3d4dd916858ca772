"""Headless Chromium loads the play page, presses keys and buttons, and sees frames respond.

Uses the Debian ``chromium`` package (``make test`` installs it when it can) through Playwright's
Python package with ``executable_path`` (no browser download). Skipped, saying why, only where
Chromium or Playwright is missing.
"""

from __future__ import annotations

import os
import shutil

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("WORLDLOOM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def page():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not installed at {CHROMIUM} (make test installs the Debian 'chromium' package "
                    "where it can: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed "
                                   "(pip install -e '.[dev]')")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            pg = browser.new_page()
            pg.errors = []
            pg.on("pageerror", lambda e: pg.errors.append(str(e)))
            pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
            yield pg
        finally:
            browser.close()


def _pixels(page, canvas="model"):
    return page.evaluate(f"""() => {{
        const c = document.getElementById('{canvas}');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
    }}""")


def _wait_action(page, action, timeout=20_000):
    page.wait_for_function(f"() => worldloom.lastHeader && worldloom.lastHeader.action === {action}", timeout=timeout)


def test_page_plays_with_keys_and_buttons(page, serve):
    srv = serve(fps=10.0)
    page.goto(srv.url + "/")
    page.wait_for_function("() => worldloom.frames >= 3", timeout=60_000)
    assert page.eval_on_selector("#model", "c => getComputedStyle(c).imageRendering") == "pixelated"
    assert page.eval_on_selector("#model", "c => c.getBoundingClientRect().width") >= 256
    names = page.eval_on_selector_all("#buttons button", "bs => bs.map(b => b.firstChild.textContent)")
    assert names == ["noop", "up", "down", "left", "right"]
    assert "window 6" in page.inner_text("#policy") and page.inner_text("#steps").startswith("2")
    assert page.inner_text("#context").startswith("arena reset")

    before, frames0 = _pixels(page), page.evaluate("worldloom.frames")
    assert any(before[i] for i in range(0, len(before), 4))  # something was drawn
    page.keyboard.down("ArrowRight")
    _wait_action(page, 4)
    page.wait_for_function(f"() => worldloom.frames >= {frames0 + 3}")
    assert _pixels(page) != before
    assert page.evaluate("worldloom.lastHeader.seq") >= 1
    page.keyboard.up("ArrowRight")
    _wait_action(page, 0)
    page.keyboard.down("w")  # WASD too
    _wait_action(page, 1)
    page.keyboard.up("w")
    _wait_action(page, 0)

    btn = page.locator("#buttons button[data-action='3']")  # on-screen "left"
    box = btn.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    _wait_action(page, 3)
    page.mouse.up()
    _wait_action(page, 0)

    page.check("#truthToggle")
    page.wait_for_function("() => worldloom.lastHeader.panels === 2 && worldloom.lastHeader.psnr !== null")
    assert page.is_visible("#truth") and "dB" in page.inner_text("#psnr")
    page.uncheck("#truthToggle")
    page.wait_for_function("() => worldloom.lastHeader.panels === 1")

    page.fill("#seed", "7")
    page.uncheck("#newSeed")
    page.click("#reset")
    page.wait_for_function("() => worldloom.seed === 7 && worldloom.lastHeader.step <= 3", timeout=20_000)
    for sel in ("#fps", "#latency", "#step"):
        assert page.inner_text(sel) not in ("", "–"), sel
    assert "/record/" in page.get_attribute("#dlMp4", "href")
    assert page.errors == []


def test_page_plays_with_a_token_under_its_csp(page, serve):
    srv = serve(fps=10.0, host="0.0.0.0", token="browser-token")
    r = page.goto(srv.url + "/")
    assert r.status == 403 and "token" in page.inner_text("body")
    r = page.goto(srv.url + "/?token=browser-token")
    assert r.status == 200 and "style-src 'sha256-" in r.headers["content-security-policy"]
    page.wait_for_function("() => worldloom.frames >= 3", timeout=60_000)  # /app.js and /ws got the cookie
    assert page.eval_on_selector("#model", "c => getComputedStyle(c).imageRendering") == "pixelated"
    assert page.eval_on_selector(".row + .row", "e => getComputedStyle(e).marginTop") == "8px"
    page.goto(srv.url + "/")  # the cookie alone is enough from now on
    page.wait_for_function("() => worldloom.frames >= 1", timeout=60_000)
    errors = [e for e in page.errors if "403" not in e]  # the first, refused load logs its 403
    assert errors == [], errors  # no CSP violation (Chromium reports them as console errors)


def test_dragging_across_the_view_drives_a_mouse_axis(page, serve, tiny_world):
    """An axis bound to the pointer (``steer=MouseX:0.05``): a drag across the model view sends the
    movement times the gain as that axis's value, the frames are made with it, and it rests again after."""
    pytest.importorskip("pygame", reason="Pendulum renders with pygame")
    import dataclasses

    from worldloom.actions import ActionSpec, Axis
    from worldloom.data.collect import resolve_env_kwargs
    from worldloom.models.dit import CausalDiT
    from worldloom.runtime.simulator import WorldModel

    dit = CausalDiT(dataclasses.replace(tiny_world.dit.cfg, n_actions=1, n_axes=1)).eval()
    config = {"kind": "worldmodel", "env": "gym:Pendulum-v1", "env_kwargs": resolve_env_kwargs("gym:Pendulum-v1", 64, None)}
    spec = ActionSpec(names=("noop",), keys=((),), axes=(Axis("steer", -2.0, 2.0, mouse="x", mouse_gain=0.05),))
    srv = serve(checkpoints={"pend": WorldModel(tiny_world.vae, dit, config, spec, sim=tiny_world.sim)}, fps=10.0)
    page.goto(srv.url + "/")
    page.wait_for_function("() => worldloom.frames >= 2", timeout=60_000)
    assert "steer with the mouse" in page.inner_text("#hint")
    box = page.locator("#model").bounding_box()
    x, y = box["x"] + 20, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    moved = []
    for _ in range(12):  # keep dragging rightwards until a frame is made with the pushed value
        x += 10
        page.mouse.move(x, y)
        page.wait_for_timeout(40)
        h = page.evaluate("worldloom.lastHeader")
        if h.get("axes") and h["axes"][0] > 0:
            moved.append(h["axes"][0])
            break
    page.mouse.up()
    assert moved and 0 < moved[0] <= 2.0  # 10 px or so a frame, times 0.05, clipped to the range
    page.wait_for_function("() => worldloom.lastHeader.axes && worldloom.lastHeader.axes[0] === 0", timeout=10_000)
    assert page.errors == []

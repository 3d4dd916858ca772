"""A screenshot of a real play session (checkpoint, truth side by side) for the README.

    .venv/bin/python tools/play_screenshot.py arena     # writes docs/img/play.png
"""
import subprocess, sys, time
port = 8765
srv = subprocess.Popen([".venv/bin/worldloom", "play", "--checkpoint", sys.argv[1], "--port", str(port), "--no-open", "--fps", "15"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
try:
    from playwright.sync_api import sync_playwright
    time.sleep(6)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                    "--disable-component-update", "--disable-sync", "--no-first-run"])
        pg = b.new_page(viewport={"width": 1100, "height": 640})
        pg.goto(f"http://127.0.0.1:{port}/")
        pg.wait_for_function("() => worldloom.frames >= 3", timeout=120_000)
        pg.check("#truthToggle")
        pg.focus("#model")
        for key, n in (("ArrowRight", 12), ("ArrowDown", 10), ("ArrowLeft", 6)):
            pg.keyboard.down(key); time.sleep(n / 15 * 2.5); pg.keyboard.up(key)
        time.sleep(1.0)
        pg.screenshot(path="docs/img/play.png")
        b.close()
finally:
    srv.terminate()

"""A GIF of real play in the browser for the README: model | truth side by side, about 10 s.

    .venv/bin/python tools/play_gif.py arena [--out docs/img/play.gif] [--seconds 10] [--port 8766]

Starts ``worldloom play``, opens the page in headless Chromium (Playwright, the Debian ``chromium``),
ticks "show truth side by side", holds arrow keys along a fixed route, then downloads the session's own
recording (``/record/<session>?format=gif``: every frame the server sent, with the truth it showed) and
keeps the frames from the first key press on. Nothing is staged: the frames are what the browser got.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import time
import urllib.request
import zipfile

ROUTE = (("ArrowRight", 2.0), ("ArrowDown", 1.6), ("ArrowLeft", 2.2), ("ArrowUp", 1.6), (None, 1.2), ("ArrowRight", 1.4))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--out", default="docs/img/play.gif")
    ap.add_argument("--port", type=int, default=8766)
    ap.add_argument("--fps", type=float, default=15.0)
    a = ap.parse_args()

    import imageio.v3 as iio
    from playwright.sync_api import sync_playwright

    from worldloom.video import write_video

    srv = subprocess.Popen([".venv/bin/worldloom", "play", "--checkpoint", a.checkpoint, "--port", str(a.port),
                            "--no-open", "--fps", str(a.fps)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{a.port}"
    try:
        for _ in range(120):  # wait for the server
            try:
                urllib.request.urlopen(base + "/api/info", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            pg = b.new_page(viewport={"width": 1100, "height": 640})
            pg.goto(base + "/")
            pg.wait_for_function("() => worldloom.frames >= 3", timeout=120_000)
            pg.check("#truthToggle")
            pg.focus("#model")
            time.sleep(0.5)
            start = pg.evaluate("() => worldloom.frames")
            for key, sec in ROUTE:
                if key:
                    pg.keyboard.down(key)
                time.sleep(sec)
                if key:
                    pg.keyboard.up(key)
            sid = pg.evaluate("() => worldloom.session")
            resp = pg.request.get(f"{base}/record/{sid}?format=gif")
            if not resp.ok:
                raise SystemExit(f"/record answered {resp.status}: {resp.text()[:200]}")
            z = zipfile.ZipFile(io.BytesIO(resp.body()))
            log = json.loads(z.read("actions.json"))
            frames = iio.imread(z.read("video.gif"), extension=".gif", index=None)  # (T, H, W, 3|4)
            b.close()
        first = max(0, min(len(frames) - 1, start - (log["frames"] - len(frames))))
        clip = frames[first:, ..., :3]
        write_video(a.out, clip, a.fps)
        moving = sum(1 for x in log["actions"][first:] if x)
        print(json.dumps({"out": a.out, "frames": int(len(clip)), "seconds": round(len(clip) / a.fps, 1),
                          "moving_frames": moving, "dropped_frames": log.get("dropped_frames"), "layout": log["layout"]}))
    finally:
        srv.terminate()


if __name__ == "__main__":
    main()

"""Soak (``make test-all``): the play server in its own process, started as a user starts it
(``worldloom play``), through >= 10,000 malformed messages of every kind, 1,000 connect/close cycles
and 20 concurrent ``/record`` requests at the recording cap (1,800 frames a session), while one
player keeps playing the whole time.

Required (the hardening issue): the process never dies and logs no traceback; every bad message
gets its ``error`` reply and no session is dropped; every valid session still gets frames; resident
memory after the soak is within 10 % of where it started (measured after a warm-up session that
played, downloaded a GIF and an mp4, and left)."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from worldloom.serve import protocol as P

from wsclient import KINDS, Client, fuzz_messages, message_kind

pytestmark = pytest.mark.slow

N_FUZZ, FUZZERS, BATCH = 10_000, 2, 100
N_CYCLES = 1_000
RECORD_CAP, RECORDERS, REQUESTS = 1_800, 4, 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _get(url: str, timeout: float = 600.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


def _sessions(port: int) -> int:
    return json.loads(_get(f"http://127.0.0.1:{port}/api/info", 30)[1])["sessions"]


def _wait(cond: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def _play(c: Client, n: int, start: int = 1) -> int:
    """Send ``n`` actions one at a time (``--fps 0``: one frame per action), each answered by its frame."""
    for seq in range(start, start + n):
        c.send({"type": "action", "action": seq % 5, "seq": seq})
        c.frame(timeout=60, where=lambda h, s=seq: h.get("seq") == s)
    return start + n


class Player(threading.Thread):
    """A valid session that keeps playing through the whole soak; records its frame gaps."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.c = Client(port)
        self.c.json("ready")
        self.stop, self.frames, self.gaps, self.error = threading.Event(), 0, [], None

    def run(self) -> None:
        try:
            seq, last = 1, time.monotonic()
            while not self.stop.is_set():
                seq = _play(self.c, 1, seq)
                now = time.monotonic()
                self.frames, self.gaps = self.frames + 1, self.gaps + [now - last]
                last = now
        except Exception as e:  # reported by the test, not swallowed
            self.error = e


def _fuzz(port: int, msgs: list[str | bytes]) -> Counter:
    """Send ``msgs`` in batches, each followed by a ping; return the error codes received. Every
    batch's errors must arrive before its pong (the receive loop answers in order)."""
    c = Client(port)
    c.json("ready")
    codes: Counter = Counter()
    for b in range(0, len(msgs), BATCH):
        batch = msgs[b : b + BATCH]
        for m in batch:
            c.send(m)
        c.send({"type": "ping", "t": b})
        got = 0
        while True:
            m = c.recv(60)
            if isinstance(m, dict) and m["type"] == "error":
                codes[m["code"]] += 1
                got += 1
            elif isinstance(m, dict) and m["type"] == "pong" and m.get("t") == b:
                break
        assert got == len(batch), f"batch {b}: {got} error replies for {len(batch)} bad messages"
    c.send({"type": "action", "action": 1, "seq": 7})  # still a working session
    c.frame(timeout=60, where=lambda h: h.get("seq") == 7)
    c.close()
    return codes


def _cycle(port: int, i: int) -> str:
    """One connect/close cycle; mode by ``i``: close at once, after hello, after ready, or drop the TCP
    socket with no close frame. Returns how the server answered."""
    c = Client(port)
    mode = i % 4
    try:
        if mode == 0:
            return "opened"
        first = c.recv(30)
        assert isinstance(first, dict) and first["type"] in ("hello", "error"), first
        if first["type"] == "error":
            return first["code"]
        if mode == 2:
            c.json("ready")
        if mode == 3:
            c.ws.socket.shutdown(socket.SHUT_RDWR)
        return "hello"
    finally:
        c.close()


def _recorded(port: int) -> tuple[Client, str]:
    c = Client(port)
    sid = c.json("hello")["session"]
    c.json("ready")
    _play(c, RECORD_CAP + 20)  # past the cap: the recording holds its last RECORD_CAP frames
    return c, sid


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from dataclasses import asdict

    from worldloom.checkpoint import save_checkpoint
    from worldloom.envs.arena import ARENA_ACTIONS
    from worldloom.models.dit import CausalDiT, DynamicsConfig
    from worldloom.models.vae import VAE, VAEConfig
    from worldloom.runtime.simulator import SimConfig

    import torch

    tmp_path = tmp_path_factory.mktemp("soak")
    torch.manual_seed(0)
    vae, dit = VAE(VAEConfig(width=16, blocks=1)).eval(), CausalDiT(DynamicsConfig(dim=32, depth=2, heads=2, max_frames=8)).eval()
    config = {"kind": "worldmodel", "vae": asdict(vae.cfg), "dynamics": asdict(dit.cfg), "sim": asdict(SimConfig(steps=2, window=6)),
              "action_spec": ARENA_ACTIONS.to_dict(), "env": "arena", "env_kwargs": {"view": 64}, "fps": 15}
    tiny_ckpt = save_checkpoint(tmp_path / "wm", config, {"vae": vae, "dit": dit}, card="# tiny\n")
    port, log = _free_port(), tmp_path / "server.log"
    cmd = [sys.executable, "-m", "worldloom.cli", "play", "--checkpoint", str(tiny_ckpt), "--port", str(port),
           "--no-open", "--fps", "0", "--max-sessions", "8", "--idle-timeout", "900"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        def up() -> bool:
            assert proc.poll() is None, f"the server exited {proc.returncode}: {log.read_text()[-2000:]}"
            try:
                return _sessions(port) == 0
            except OSError:
                return False

        _wait(up, 120, "the server to answer /api/info")
        yield proc, port, log
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def soak(server):
    """Run the whole soak once; the tests below check its parts."""
    proc, port, log = server
    url = f"http://127.0.0.1:{port}"
    # Warm-up: one session plays, downloads both formats and leaves; memory is measured from here.
    c = Client(port)
    sid = c.json("hello")["session"]
    c.json("ready")
    _play(c, 50)
    assert all(_get(f"{url}/record/{sid}?format={f}")[0] == 200 for f in ("gif", "mp4"))
    c.close()
    _wait(lambda: _sessions(port) == 0, 30, "the warm-up session to end")
    rss0, peak = _rss_mb(proc.pid), 0.0

    player = Player(port)
    player.start()

    # 1. >= 10,000 malformed messages, every kind, from FUZZERS sessions at once.
    msgs = fuzz_messages(N_FUZZ, seed=1, checkpoints=frozenset({"wm"}))
    kinds = Counter(map(message_kind, msgs))
    assert all(kinds[k] >= 300 for k in (*KINDS, "binary", "not_json", "other")), kinds
    with ThreadPoolExecutor(FUZZERS) as pool:
        parts = list(pool.map(lambda i: _fuzz(port, msgs[i::FUZZERS]), range(FUZZERS)))
    codes = sum(parts, Counter())
    assert sum(codes.values()) == N_FUZZ and set(codes) <= set(P.ERROR_CODES), codes
    assert len(codes) >= 7, codes
    peak = max(peak, _rss_mb(proc.pid))

    # 2. 1,000 connect/close cycles (a quarter of them drop the socket without a close frame).
    answers = Counter(_cycle(port, i) for i in range(N_CYCLES))
    assert answers["hello"] == 3 * N_CYCLES // 4 and answers["opened"] == N_CYCLES // 4, answers
    _wait(lambda: _sessions(port) == 1, 60, "the cycled sessions to be freed (only the player left)")
    peak = max(peak, _rss_mb(proc.pid))

    # 3. 20 concurrent /record requests over RECORDERS sessions whose recordings are at the cap.
    with ThreadPoolExecutor(RECORDERS) as pool:
        recs = list(pool.map(lambda _: _recorded(port), range(RECORDERS)))
    for c, _ in recs:
        c.send({"type": "pause", "on": True})
    frames_before = player.frames
    urls = [f"{url}/record/{recs[i % RECORDERS][1]}?format={'gif' if i % 2 else 'mp4'}" for i in range(REQUESTS)]
    with ThreadPoolExecutor(REQUESTS) as pool:
        results = list(pool.map(_get, urls))
        peak = max(peak, _rss_mb(proc.pid))
    status = Counter(s for s, _ in results)
    assert set(status) <= {200, 429, 503} and status[200] >= 2, status
    for s, body in results:
        if s == 200:
            z = zipfile.ZipFile(io.BytesIO(body))
            assert json.loads(z.read("actions.json"))["frames"] == RECORD_CAP
        else:
            assert "error" in json.loads(body)
    assert player.frames > frames_before, "the player got no frames while the recordings were encoded"
    for c, _ in recs:  # the recorders' sessions are still alive after the downloads
        c.send({"type": "ping", "t": 1})
        c.json("pong")
        c.close()

    player.stop.set()
    player.join(120)
    player.c.close()
    _wait(lambda: _sessions(port) == 0, 60, "every session to end")
    time.sleep(2)
    rss1 = _rss_mb(proc.pid)
    out = {"rss_start_mb": round(rss0, 1), "rss_peak_mb": round(peak, 1), "rss_end_mb": round(rss1, 1),
           "player_frames": player.frames, "player_max_gap_s": round(max(player.gaps), 2), "player_error": player.error,
           "fuzz_codes": dict(codes), "kinds": dict(kinds), "cycles": dict(answers), "record_status": dict(status),
           "alive": proc.poll() is None, "log": log.read_text()}
    print(json.dumps({k: v for k, v in out.items() if k not in ("log", "player_error")}))
    return out


def test_soak_server_survives_and_answers(soak):
    assert soak["alive"] and "Traceback" not in soak["log"], soak["log"][-3000:]
    assert soak["player_error"] is None, f"the player's session failed: {soak['player_error']!r}"
    assert soak["player_frames"] > 100 and soak["player_max_gap_s"] < 30, soak


def test_soak_memory_returns_within_ten_percent(soak):
    assert soak["rss_end_mb"] <= 1.10 * soak["rss_start_mb"], (
        f"resident memory {soak['rss_end_mb']:.0f} MB after the soak vs {soak['rss_start_mb']:.0f} MB at its start")

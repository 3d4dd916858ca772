"""Play server over a real WebSocket (uvicorn in a thread): play, fuzz, huge numbers, failures that
close a session, cap, idle, reset, truth, record, path safety, shared weights, the ws bench, and
the CLI hooks."""

from __future__ import annotations

import argparse
import http.client
import io
import json
import logging
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import replace

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed

from worldloom.checkpoint import save_checkpoint
from worldloom.config import to_dict
from worldloom.envs.arena import ARENA_ACTIONS
from worldloom.serve import protocol as P
from worldloom.serve.session import build_context

from wsclient import fuzz_messages


def _get(srv, path):
    try:
        with urllib.request.urlopen(srv.url + path, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


def _save(world, d):
    cfg = dict(world.config, vae=to_dict(world.vae.cfg), dynamics=to_dict(world.dit.cfg),
               action_spec=world.action_spec.to_dict(), sim=to_dict(world.sim), fps=15)
    return save_checkpoint(d, cfg, {"vae": world.vae, "dit": world.dit}, "# tiny\n")


def _closed_code(c, timeout=10.0):
    with pytest.raises(ConnectionClosed) as e:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            c.recv(timeout=timeout)
    return e.value.rcvd.code if e.value.rcvd else None


def test_play_actions_pause_and_info(serve, client):
    srv = serve()
    c = client(srv)
    hello = c.json("hello")
    assert hello["checkpoints"] == ["tiny"] and hello["fps"] == 10 and len(hello["session"]) >= 20
    ready = c.json("ready")
    assert [a["name"] for a in ready["actions"]] == list(ARENA_ACTIONS.names)
    assert ready["sim"]["steps"] == 2 and ready["sim"]["policy"] == "window 6" and ready["truth_available"]
    assert ready["context_source"].startswith("arena reset (seed 0)")
    h, panels = c.frame()
    assert h["action"] == 0 and panels[0].shape == (64, 64, 3) and len(panels) == 1
    c.send({"type": "action", "action": "right", "seq": 1})
    h, _ = c.frame(where=lambda h: h["seq"] == 1)
    assert h["action"] == 4 and set(h["timings_ms"]) >= {"denoise_ms", "cache_write_ms", "decode_ms", "encode_ms"}
    c.send({"type": "action", "action": 0, "seq": 2})  # release: a latched tap still moves once
    h, _ = c.frame(where=lambda h: h["seq"] == 2 and h["action"] == 0)
    c.send({"type": "pause", "on": True})
    end, stopped = time.monotonic() + 5, False
    while not stopped and time.monotonic() < end:  # a frame in flight may still come; then none
        try:
            c.frame(timeout=0.6)
        except TimeoutError:
            stopped = True
    assert stopped
    c.send({"type": "pause", "on": False})
    assert c.frame()[0]["step"] > h["step"]
    c.send({"type": "ping", "t": 3.5})
    assert c.json("pong")["t"] == 3.5
    status, body = _get(srv, "/api/info")
    assert status == 200 and json.loads(body)["sessions"] == 1
    status, body = _get(srv, "/")
    assert status == 200 and b"image-rendering: pixelated" in body
    assert _get(srv, "/app.js")[0] == 200


def test_fuzz_600_bad_messages_each_get_an_error_and_server_keeps_going(serve, client):
    srv = serve(fps=5.0)
    c = client(srv)
    c.json("ready")
    msgs = fuzz_messages(600)
    for i, m in enumerate(msgs):
        c.send(m)
        if i % 100 == 0:
            c.send({"type": "ping", "t": i})
    errors, pongs = [], 0
    end = time.monotonic() + 120
    while len(errors) < len(msgs) and time.monotonic() < end:
        m = c.recv()
        if isinstance(m, dict):
            if m["type"] == "error":
                errors.append(m)
            pongs += m["type"] == "pong"
    assert len(errors) == len(msgs)
    assert all(set(e) >= {"code", "message"} and e["code"] in P.ERROR_CODES for e in errors)
    assert len({e["code"] for e in errors}) >= 6
    # still alive and answering: on this session and for a new player
    c.send({"type": "action", "action": "up", "seq": 99})
    assert c.frame(where=lambda h: h["seq"] == 99)[0]["action"] == 1
    c.send({"type": "ping"})
    c.json("pong")
    c2 = client(srv)
    c2.json("ready")
    assert c2.frame()[0]["step"] >= 1


def test_huge_numbers_get_an_error_and_the_session_lives(serve, client):
    srv = serve()
    c = client(srv)
    c.json("ready")
    for m in ('{"type": "ping", "t": ' + "9" * 309 + "}", '{"type": "ping", "t": -' + "1" * 4000 + "}",
              '{"type": "action", "action": 1, "seq": ' + "9" * 400 + "}",
              '{"type": "reset", "seed": ' + "9" * 309 + "}", '{"type": "action", "action": ' + "9" * 309 + "}"):
        c.send(m)
        err = c.json("error")
        assert err["code"] == "out_of_range" and "out of range" in err["message"], err
    c.send({"type": "ping", "t": 2**53})
    assert c.json("pong")["t"] == 2**53
    c.send({"type": "action", "action": "up", "seq": 5})
    assert c.frame(where=lambda h: h["seq"] == 5)[0]["action"] == 1


def test_a_failing_message_closes_the_session_with_an_error_and_a_log_line(serve, client, monkeypatch, caplog):
    srv = serve()
    parse = P.parse_message

    def parse_or_fail(data, spec, checkpoints):
        if data == "boom":
            raise OverflowError("a bug")
        return parse(data, spec, checkpoints)

    monkeypatch.setattr(P, "parse_message", parse_or_fail)  # the app looks it up per message
    c, other = client(srv), client(srv)
    c.json("ready"), other.json("ready")
    with caplog.at_level(logging.ERROR, logger="worldloom.serve"):
        c.send("boom")
        err = c.json("error")
        assert err["code"] == "internal_error" and "OverflowError" in err["message"]
        assert _closed_code(c) == 1011
    rec = [r for r in caplog.records if r.name == "worldloom.serve" and "closing it (1011)" in r.getMessage()]
    assert len(rec) == 1 and rec[0].exc_info[0] is OverflowError
    other.send({"type": "ping"})  # other players are unaffected
    assert other.json("pong")["sessions"] == 1


def test_transport_limit_closes_only_that_socket(serve, client):
    srv = serve()
    c = client(srv)
    c.json("ready")
    c.send("y" * (P.TRANSPORT_MAX_BYTES + 10))
    assert _closed_code(c) == 1009
    c2 = client(srv)
    assert c2.json("ready")["checkpoint"] == "tiny"


def test_session_cap_says_busy(serve, client):
    srv = serve(max_sessions=2)
    a, b = client(srv), client(srv)
    a.json("ready"), b.json("ready")
    c = client(srv)
    err = c.json("error")
    assert err["code"] == "busy" and "2 players" in err["message"]
    assert _closed_code(c) == 1013
    a.close()
    end = time.monotonic() + 10
    while json.loads(_get(srv, "/api/info")[1])["sessions"] != 1 and time.monotonic() < end:
        time.sleep(0.05)
    d = client(srv)
    assert d.json("ready")["checkpoint"] == "tiny"


def test_idle_sessions_are_reaped(serve, client):
    srv = serve(idle_timeout=0.8, fps=5.0)
    worker = srv.app.state.worker
    idle, active = client(srv), client(srv)
    idle.json("ready"), active.json("ready")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.5:  # the active player keeps sending input
        active.send({"type": "action", "action": 1})
        time.sleep(0.2)
    assert idle.json("error", timeout=5)["code"] == "idle"
    assert _closed_code(idle) == 4000
    assert len(worker.sessions) == 1
    active.send({"type": "ping"})
    active.json("pong")
    assert not any(m.get("code") == "idle" for m in active.messages)


def test_reset_is_deterministic_under_seed_and_rejects_unknown_checkpoints(serve, client, tiny_world, tmp_path):
    ck = _save(tiny_world, tmp_path / "disk")
    bad = _save(tiny_world, tmp_path / "bad")
    (bad / "model.safetensors").write_bytes(b"not safetensors")
    srv = serve(checkpoints={"tiny": tiny_world, "disk": str(ck), "bad": str(bad)})
    c = client(srv)
    c.json("ready")
    firsts = []
    for seed in (5, 5, 6):
        c.send({"type": "reset", "seed": seed})
        assert c.json("ready")["seed"] == seed
        firsts.append(c.frame()[1][0])  # frames of the old world never follow 'ready'
    assert np.array_equal(firsts[0], firsts[1]) and not np.array_equal(firsts[0], firsts[2])
    # a checkpoint path, even a valid one, is not a configured name
    for name in (str(ck), "../disk", "disk/", "DISK"):
        c.send({"type": "reset", "checkpoint": name})
        assert c.json("error")["code"] == "unknown_checkpoint"
    c.send({"type": "reset", "checkpoint": "bad"})
    err = c.json("error")
    assert err["code"] == "reset_failed" and "model.safetensors" in err["message"]
    assert c.frame()[0]["step"] >= 1  # the previous world keeps running
    c.send({"type": "reset", "checkpoint": "disk", "seed": 5})
    r = c.json("ready")
    assert r["checkpoint"] == "disk"
    assert np.array_equal(c.frame()[1][0], firsts[0])  # same weights from disk, same frames


def test_sessions_share_weights(serve, client):
    srv = serve()
    a, b = client(srv), client(srv)
    a.json("ready"), b.json("ready")
    a.frame(), b.frame()
    sims = [s.sim for s in srv.app.state.worker.sessions.values()]
    assert len(sims) == 2 and sims[0] is not sims[1] and sims[0].cache is not sims[1].cache
    assert sims[0].model is sims[1].model
    p0, p1 = (next(s.model.dit.parameters()) for s in sims)
    assert p0.data_ptr() == p1.data_ptr()


def test_truth_runs_in_lockstep(serve, client, tiny_world):
    from worldloom.data.collect import make_recorded_env

    srv = serve(fps=10.0)
    c = client(srv)
    c.json("ready")
    headers = {}
    truth = {}
    c.send({"type": "action", "action": "right"})
    c.send({"type": "truth", "on": True})
    while len(truth) < 4:
        h, panels = c.frame()
        headers[h["step"]] = h
        if h["panels"] == 2:
            assert h["psnr"] is not None and 0 < h["psnr"] <= 100
            truth[h["step"]] = panels[1]
        if len(truth) == 2:
            c.send({"type": "action", "action": "down"})
    env = make_recorded_env(tiny_world.config, frame_size=64)  # the served model's own world
    env.reset(seed=0)
    for _ in range(3):
        env.step(0)
    for step in range(1, max(truth) + 1):
        obs = env.step(headers[step]["action"])[0]
        if step in truth:
            assert np.array_equal(obs, truth[step]), step
    c.send({"type": "truth", "on": False})
    assert c.frame(where=lambda h: h["panels"] == 1)[0]["psnr"] is None


def test_record_download(serve, client):
    srv = serve(fps=10.0)
    c = client(srv)
    sid = c.json("hello")["session"]
    c.json("ready")
    c.send({"type": "truth", "on": True})
    c.send({"type": "action", "action": 3})
    c.frame(where=lambda h: h["step"] >= 6)
    status, body = _get(srv, f"/record/{sid}?format=gif")
    assert status == 200
    z = zipfile.ZipFile(io.BytesIO(body))
    assert sorted(z.namelist()) == ["actions.json", "video.gif"]
    log = json.loads(z.read("actions.json"))
    assert log["frames"] == len(log["actions"]) >= 6 and log["checkpoint"] == "tiny" and log["seed"] == 0
    assert log["action_names"] == list(ARENA_ACTIONS.names) and 3 in log["actions"]
    import imageio.v3 as iio

    gif = iio.imread(z.read("video.gif"), extension=".gif")
    assert gif.shape[0] == log["frames"] and gif.shape[1:3] == (256, 512)  # model | truth, 4x
    status, body = _get(srv, f"/record/{sid}?format=mp4")
    assert status == 200 and b"ftyp" in zipfile.ZipFile(io.BytesIO(body)).read("video.mp4")[:16]
    assert _get(srv, f"/record/{sid}?format=exe")[0] == 400
    assert _get(srv, "/record/not-a-session")[0] == 404


def test_http_paths_are_not_files(serve):
    srv = serve()
    for path in ("/record/..%2F..%2Fetc%2Fpasswd", "/static/app.js", "/pyproject.toml", "/..%2Fpyproject.toml"):
        assert _get(srv, path)[0] == 404, path
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", "/../../etc/passwd")
    r = conn.getresponse()
    assert r.status == 404 and b"root:" not in r.read()
    conn.close()


def test_unpaced_mode_one_frame_per_action(serve, client):
    srv = serve(fps=0.0)
    c = client(srv)
    c.json("ready")
    with pytest.raises(TimeoutError):
        c.frame(timeout=0.5)
    for i in range(1, 4):
        c.send({"type": "action", "action": i % 5, "seq": i})
        h, _ = c.frame()
        assert h["seq"] == i and h["step"] == i


def test_bundled_context(tiny_world, tmp_path):
    m = replace(tiny_world, config={"kind": "worldmodel", "env": "not-an-env"}, path=tmp_path)
    ctx = build_context(m, seed=0)
    assert ctx.source.startswith("zeros") and ctx.env is None and ctx.frames.shape == (4, 64, 64, 3)
    clip = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    np.save(tmp_path / "context_frames.npy", clip)
    np.save(tmp_path / "context_actions.npy", np.array([0, 4, 4]))
    ctx = build_context(m, seed=0)
    assert ctx.source.startswith("bundled") and np.array_equal(ctx.frames, clip) and ctx.actions.tolist() == [0, 4, 4]
    assert ctx.axes is None
    np.save(tmp_path / "context_actions.npy", np.array([0, 9, 4]))
    with pytest.raises(ValueError, match="context_actions.npy"):
        build_context(m, seed=0)
    np.save(tmp_path / "context_frames.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):  # never unpickled
        build_context(m, seed=0)


def test_ws_bench(tiny_world):
    from worldloom.serve.bench_ws import format_table, ws_bench

    r = ws_bench(tiny_world, frames=30, warmup=3)  # the player in its own process, as a browser is
    assert r["client"] == "process" and r["system"]["threads"] == 1
    assert r["frames"] == 30 and r["fps"] > 0 and r["actions_answered"] == 30
    assert r["latency_ms"]["p50"] <= r["latency_ms"]["p95"] <= r["latency_ms"]["p99"]
    assert {"denoise", "cache_write", "decode", "encode", "send", "encode_send"} <= set(r["stages_ms"])
    assert r["rss_mb"]["start"] > 0 and r["rss_mb"]["end"] > 0
    json.dumps(r)
    assert "action -> frame ms" in format_table(r)
    paced = ws_bench(tiny_world, frames=6, fps=20.0, warmup=1, client_process=False, threads=2)
    assert paced["target_fps"] == 20.0 and paced["frames"] == 6 and paced["actions_answered"] >= 1
    assert paced["client"] == "thread" and paced["system"]["threads"] == 2
    with pytest.raises(ValueError, match="threads"):
        ws_bench(tiny_world, frames=2, threads=0)


def test_play_cli_hooks_check_arguments(capsys):
    from worldloom.cli.play import add_play_arguments, play_main

    parser = argparse.ArgumentParser()
    add_play_arguments(parser)
    args = parser.parse_args([])
    assert args.host == "127.0.0.1" and args.port == 8000 and args.fps == 30.0 and args.max_sessions == 4
    assert play_main(parser.parse_args(["--checkpoint", "/nonexistent/ck"])) == 2
    assert "not found" in capsys.readouterr().err
    assert play_main(parser.parse_args(["--checkpoint", "/nonexistent/ck", "--port", "70000", "--fps", "-1",
                                        "--threads", "0"])) == 2
    err = capsys.readouterr().err
    assert "--port" in err and "--fps" in err and "--threads" in err
    # --keys is tried on each checkpoint's spec before anything loads: a name it lacks is one usage line
    assert play_main(parser.parse_args(["--checkpoint", "arena", "--keys", "jump=j"])) == 2
    assert "arena: --keys: no action named 'jump'; its actions are noop, up, down, left, right" in capsys.readouterr().err
    assert play_main(parser.parse_args(["--checkpoint", "arena", "--keys", "up=j:1"])) == 2
    assert "'up' has KEY:VALUE entries but is no axis" in capsys.readouterr().err
    assert play_main(parser.parse_args(["--checkpoint", "arena", "--keys", "up=not a key"])) == 2
    assert "--keys:" in capsys.readouterr().err


def test_continuous_axes_in_play(serve, client, tiny_world):
    """A Box world: 'ready' lists its axes and keys, 'action' carries their values to the model and the truth env."""
    pytest.importorskip("pygame", reason="Pendulum renders with pygame")
    import dataclasses

    import torch

    from worldloom.data.collect import make_recorded_env, resolve_env_kwargs
    from worldloom.envs.keys import axis_spec
    from worldloom.models.dit import CausalDiT
    from worldloom.runtime.simulator import WorldModel

    dit = CausalDiT(dataclasses.replace(tiny_world.dit.cfg, n_actions=1, n_axes=1)).eval()
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    config = {"kind": "worldmodel", "env": "gym:Pendulum-v1", "env_kwargs": resolve_env_kwargs("gym:Pendulum-v1", 64, None)}
    world = WorldModel(tiny_world.vae, dit, config, axis_spec([-2.0], [2.0]), sim=tiny_world.sim)
    c = client(serve(checkpoints={"pend": world}, fps=10.0))
    ready = c.json("ready")
    assert ready["axes"] == [{"name": "axis_0", "low": -2.0, "high": 2.0, "unit": "", "rest": 0.0,
                              "keys": [["ArrowLeft", -2.0], ["ArrowRight", 2.0]]}]
    assert ready["truth_available"]
    c.send({"type": "truth", "on": True})
    c.send({"type": "action", "action": 0, "seq": 1, "axes": [2.0]})
    headers, truth = {}, {}
    while len(truth) < 3:
        h, panels = c.frame()
        headers[h["step"]] = h
        if h["panels"] == 2 and h["seq"] == 1:
            assert h["axes"] == [2.0]
            truth[h["step"]] = panels[1]
    env = make_recorded_env(config, frame_size=64)
    env.reset(seed=0)
    for _ in range(3):
        env.step(np.zeros(1, np.float32))
    for step in range(1, max(truth) + 1):  # the truth env took the same torques, frame for frame
        obs = env.step(np.array(headers[step].get("axes", [0.0]), np.float32))[0]
        if step in truth:
            assert np.array_equal(obs, truth[step]), step
    # A tap shorter than a frame (press and release between two ticks) still pushes once, as a key tap does.
    c.send({"type": "pause", "on": True})  # no tick can fall between the two messages
    c.send({"type": "action", "action": 0, "seq": 2, "axes": [-2.0]})
    c.send({"type": "action", "action": 0, "seq": 3, "axes": [0.0]})
    c.send({"type": "pause", "on": False})
    h, _ = c.frame(where=lambda h: h["seq"] == 3)
    assert h["axes"] == [-2.0]
    h, _ = c.frame(where=lambda h: h["seq"] == 3)
    assert h.get("axes", [0.0]) == [0.0]  # then back at rest
    c.send({"type": "action", "action": 0, "axes": [9.0]})
    err = c.json("error")
    assert err["code"] == "out_of_range" and "axis_0" in err["message"] and "-2.0..2.0" in err["message"]
    c.send({"type": "action", "action": 0, "axes": [1.0, 2.0]})
    assert "list of 1 numbers" in c.json("error")["message"]

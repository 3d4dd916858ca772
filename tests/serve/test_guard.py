"""Who may connect (worldloom.serve.guard) and the server's limits: the Host/Origin allow-list and
the token, on HTTP and the WebSocket handshake; security headers; request deadlines; the
invalid-UTF-8 log line; the token URL that ``worldloom play`` prints."""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import logging
import re
import socket
import time
from importlib import resources

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from worldloom.serve.guard import Guard, is_loopback, own_names, parse_origin

PATHS = ("/", "/app.js", "/api/info", "/record/nope", "/no-such-path")


def _http(srv, path, host=None, headers=None):
    """(status, headers, body) of a GET with an exact Host header (default: 127.0.0.1:<port>)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host or f"127.0.0.1:{srv.port}")
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _ws(srv, host=None, path="/ws", **kw):
    """The first message of a WebSocket opened on 127.0.0.1 with ``Host: host`` (default 127.0.0.1:<port>),
    or the HTTP status it was refused with."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    try:
        with connect(f"ws://{host or f'127.0.0.1:{srv.port}'}{path}", sock=sock, open_timeout=30, **kw) as ws:
            return json.loads(ws.recv(timeout=30))["type"]
    except InvalidStatus as e:
        return e.response.status_code


def _scope(host, origin=None, port=8000, query=b"", cookie=None, kind="http"):
    headers = [(b"host", host.encode())] if host is not None else []
    headers += [(b"origin", origin.encode())] if origin is not None else []
    headers += [(b"cookie", cookie.encode())] if cookie is not None else []
    return {"type": kind, "scheme": "ws" if kind == "websocket" else "http", "server": ("127.0.0.1", port),
            "headers": headers, "query_string": query}


def test_guard_allows_own_names_and_listed_origins_only():
    g = Guard.create("127.0.0.1", ["https://app.example", "http://mybox.lan:9000"])
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST:8000", "app.example:443",
                 "mybox.lan:9000"):
        assert g.check(_scope(host)) is None, host
        assert g.check(_scope(host, kind="websocket")) is None, host
    for origin in ("http://localhost:8000", "http://127.0.0.1:8000", "http://[::1]:8000", "https://app.example",
                   "https://app.example:443", "http://mybox.lan:9000"):
        assert g.check(_scope("127.0.0.1:8000", origin)) is None, origin
    for host in ("evil.example:8000", "localhost:8001", "localhost", "127.0.0.2:8000", "app.example:8000",
                 "localhost:8000/x", "user@localhost:8000", "", None):
        assert g.check(_scope(host)) is not None, host
    for origin in ("http://evil.example", "http://localhost:8001", "https://localhost:8000", "null", "",
                   "http://localhost:8000/path", "file://", "http://app.example", "http://mybox.lan:9001"):
        assert g.check(_scope("127.0.0.1:8000", origin)) is not None, origin
    reason = g.check(_scope("evil.example:8000"))
    assert "evil.example:8000" in reason and "--allow-origin http://evil.example:8000" in reason
    assert g.check(_scope("127.0.0.1:8000", port=None)) is not None  # an unknown port matches nothing own
    bound = Guard.create("::1")
    assert bound.names == ("localhost", "127.0.0.1", "[::1]") and bound.check(_scope("[::1]:8000")) is None


def test_origins_hosts_and_binds_parse_strictly():
    assert parse_origin("http://LocalHost:8000") == ("http", "localhost", 8000)
    assert parse_origin("https://[::1]/") == ("https", "[::1]", 443)
    for bad in ("localhost:8000", "ws://localhost", "http://a:b", "http://a:99999", "http://[::1", "http://u@a",
                "http://a/p", "http://a?x", "null", ""):
        with pytest.raises(ValueError, match="http"):
            parse_origin(bad)
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.5", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.com"))
    assert socket.gethostname().lower() in own_names("0.0.0.0") and own_names("10.1.2.3")[-1] == "10.1.2.3"
    assert "0.0.0.0" not in own_names("0.0.0.0")  # a wildcard is not a name anyone connects to


def test_non_loopback_bind_needs_a_token(tiny_world):
    from worldloom.serve.app import create_app

    for host in ("0.0.0.0", "::", "192.168.1.5"):
        with pytest.raises(ValueError, match="needs a token"):
            create_app({"tiny": tiny_world}, host=host)
    with pytest.raises(ValueError, match="http"):
        create_app({"tiny": tiny_world}, allow_origins=["evil.example"])
    for bad in ("", "a;b", "a b", "t\u00f6k"):
        with pytest.raises(ValueError, match="token"):
            Guard.create("0.0.0.0", token=bad)
    g = Guard.create("0.0.0.0", token="t0k")
    assert g.check(_scope(f"{socket.gethostname()}:8000", query=b"token=t0k")) is None
    assert "token" in g.check(_scope("127.0.0.1:8000"))
    assert "token" in g.check(_scope("127.0.0.1:8000", query=b"token=nope"))
    assert g.check(_scope("127.0.0.1:8000", cookie="a=1; worldloom_token_8000=t0k")) is None
    assert "token" in g.check(_scope("127.0.0.1:8000", cookie="worldloom_token_8001=t0k"))  # another server's
    assert "token" in g.check(_scope("127.0.0.1:8000", cookie='worldloom_token_8000="t0k'))  # malformed: none
    assert "Host" in g.check(_scope("evil.example:8000", query=b"token=t0k"))  # the token does not lift the Host check


def test_foreign_host_and_origin_get_403_on_http_and_websocket(serve):
    srv = serve(allow_origins=["http://app.example:9000"])
    port = srv.port
    for path in PATHS:
        for host in ("evil.example", f"evil.example:{port}", f"localhost:{port + 1}"):
            status, headers, body = _http(srv, path, host=host)
            assert status == 403 and "is not this server's" in json.loads(body)["error"], (path, host)
            assert headers["content-type"] == "application/json"
        status, _, body = _http(srv, path, headers={"Origin": "http://evil.example"})
        assert status == 403 and "Origin 'http://evil.example'" in json.loads(body)["error"], path
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "app.example:9000"):
        assert _http(srv, "/api/info", host=host)[0] == 200, host
    for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}", "http://app.example:9000"):
        assert _http(srv, "/api/info", headers={"Origin": origin})[0] == 200, origin
    assert _http(srv, "/")[0] == 200  # no Origin (not a browser, or a plain page load): the Host decides

    assert _ws(srv, additional_headers={"Origin": "http://evil.example"}) == 403
    assert _ws(srv, additional_headers={"Origin": "null"}) == 403
    assert _ws(srv, host=f"evil.example:{port}") == 403
    assert _ws(srv, host="evil.example") == 403
    assert _ws(srv, host=f"localhost:{port}", additional_headers={"Origin": f"http://localhost:{port}"}) == "hello"
    assert _ws(srv, additional_headers={"Origin": "http://app.example:9000"}) == "hello"
    assert _ws(srv) == "hello"  # no Origin: a non-browser client
    assert json.loads(_http(srv, "/api/info")[2])["sessions"] == 0  # refused handshakes made no session


def test_token_is_required_by_query_or_cookie(serve):
    srv = serve(host="0.0.0.0", token="s3cret-token")
    for path in PATHS:
        status, _, body = _http(srv, path)
        assert status == 403 and "token" in json.loads(body)["error"], path
        assert _http(srv, path + "?token=wrong")[0] == 403
    status, headers, body = _http(srv, "/?token=s3cret-token")
    assert status == 200 and b"<canvas" in body
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"worldloom_token_{srv.port}=s3cret-token;")
    assert all(a in cookie for a in ("HttpOnly", "SameSite=Strict", "Path=/"))
    jar = {"Cookie": cookie.split(";")[0]}
    for path in ("/app.js", "/api/info"):
        status, headers, _ = _http(srv, path, headers=jar)
        assert status == 200 and "set-cookie" not in headers, path  # set only from a query token
    assert _http(srv, "/api/info", headers={"Cookie": f"worldloom_token_{srv.port}=wrong"})[0] == 403
    assert _http(srv, "/api/info?token=s3cret-token", host=f"{socket.gethostname()}:{srv.port}")[0] == 200
    assert _ws(srv) == 403
    assert _ws(srv, path="/ws?token=wrong") == 403
    assert _ws(srv, path="/ws?token=s3cret-token") == "hello"
    assert _ws(srv, additional_headers=jar) == "hello"


def test_security_headers_on_every_response(serve):
    srv = serve()
    html = resources.files("worldloom.serve").joinpath("static", "index.html").read_text(encoding="utf-8")
    style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    # what the CSP allows is all the page needs: no inline scripts, handlers or style attributes
    assert not re.search(r"<script(?![^>]*\bsrc=)|\son\w+=|\sstyle=", html)
    for path, host in [(p, None) for p in PATHS] + [("/", "evil.example")]:
        status, headers, _ = _http(srv, path, host=host)
        assert status in (200, 403, 404), path
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert f"style-src 'sha256-{digest}'" in csp and "frame-ancestors 'none'" in csp
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def _closed_within(sock, seconds):
    """Seconds until the server closed ``sock`` (reading EOF), failing after ``seconds``."""
    t0 = time.monotonic()
    sock.settimeout(seconds)
    while sock.recv(4096):
        pass
    return time.monotonic() - t0


def test_partial_requests_time_out(serve):
    srv = serve(request_timeout=0.6)
    silent = socket.create_connection(("127.0.0.1", srv.port))  # connects, never sends
    partial = socket.create_connection(("127.0.0.1", srv.port))
    partial.sendall(b"GET /api/info HTTP/1.1\r\n")
    assert _closed_within(silent, 10) < 5 and _closed_within(partial, 10) < 5
    trickle = socket.create_connection(("127.0.0.1", srv.port), timeout=0.05)
    t0, closed = time.monotonic(), False
    for b in b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200:  # a byte per 50 ms
        try:
            trickle.sendall(bytes([b]))
            closed = trickle.recv(1) == b""
        except TimeoutError:  # still open
            continue
        except OSError:  # reset: closed
            closed = True
        if closed:
            break
    assert closed and time.monotonic() - t0 < 5  # each byte came in time: the deadline is per request, not per byte
    # a keep-alive connection serves request after request (idle waits are keep-alive's, 5 s)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.request("GET", "/api/info")
    assert conn.getresponse().read()
    sock = conn.sock
    time.sleep(1.0)
    conn.request("GET", "/api/info")
    assert conn.getresponse().read() and conn.sock is sock
    conn.close()
    with connect(f"ws://127.0.0.1:{srv.port}/ws", open_timeout=30) as ws:  # a WebSocket outlives the deadline
        time.sleep(1.5)
        ws.send(json.dumps({"type": "ping", "t": 1}))
        while True:
            m = ws.recv(timeout=30)
            if isinstance(m, str) and json.loads(m)["type"] == "pong":
                break


def test_invalid_utf8_frames_log_one_line(serve, caplog):
    from worldloom.serve.server import UTF8_FILTER

    srv = serve()
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # what reaches uvicorn's own handlers
    logging.getLogger("uvicorn.error").addHandler(handler)
    UTF8_FILTER.next_at, UTF8_FILTER.skipped = 0.0, 0
    try:
        with caplog.at_level(logging.WARNING, logger="worldloom.serve"):
            for i in range(5):
                if i == 4:
                    UTF8_FILTER.next_at = 0.0  # as if the interval had passed
                with connect(f"ws://127.0.0.1:{srv.port}/ws", open_timeout=30) as ws:
                    ws.recv(timeout=30)
                    ws.send(b"\xff\xfe not utf-8", text=True)
                    with pytest.raises(ConnectionClosed) as e:
                        while True:
                            ws.recv(timeout=30)
                    assert e.value.rcvd.code == 1007
    finally:
        logging.getLogger("uvicorn.error").removeHandler(handler)
    lines = [r.getMessage() for r in caplog.records if "UTF-8" in r.getMessage()]
    assert len(lines) == 2 and "3 more" in lines[1] and all(r.exc_info is None for r in caplog.records)
    assert not [r for r in seen if "UTF-8" in r.getMessage()]
    assert _ws(srv) == "hello"


def test_run_prints_a_token_url_for_a_public_host(tiny_ckpt, monkeypatch, capsys):
    import uvicorn

    from worldloom.serve.app import run

    served = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: served.append(self.config))
    run(str(tiny_ckpt), host="0.0.0.0", port=8765, allow_origins=["http://mybox.lan:8765"])
    out = capsys.readouterr()
    token = served[0].app.state.guard.token
    assert len(token) >= 30 and served[0].host == "0.0.0.0" and served[0].port == 8765
    assert f"http://{socket.gethostname().lower()}:8765/?token={token}" in out.out
    assert f"http://127.0.0.1:8765/?token={token}" in out.out and "token" in out.err
    assert served[0].timeout_keep_alive == 5 and served[0].ws_ping_interval == 20.0
    run(str(tiny_ckpt), host="127.0.0.1", port=8765)
    assert served[1].app.state.guard.token is None and "?token=" not in capsys.readouterr().out


def test_play_cli_checks_allow_origin(capsys):
    from worldloom.cli.play import add_play_arguments, play_main

    parser = argparse.ArgumentParser()
    add_play_arguments(parser)
    assert parser.parse_args(["--allow-origin", "http://a:1", "--allow-origin", "https://b"]).allow_origin == \
        ["http://a:1", "https://b"]
    assert play_main(parser.parse_args(["--checkpoint", "/nonexistent/ck", "--allow-origin", "evil.example"])) == 2
    assert "--allow-origin: an origin is http(s)://host[:port], got 'evil.example'" in capsys.readouterr().err

"""Who may talk to the play server: the Host/Origin allow-list, the access token, security headers.

:class:`Guard` decides (pure: a scope in, a reason out, unit-testable); :class:`GuardMiddleware`
applies it to every HTTP request and WebSocket handshake before any route runs.

Key choices:

- **Host and Origin allow-list.** Browsers apply no CORS to WebSockets (any page may open
  ``ws://127.0.0.1:8000/ws``, with its own ``Origin``), and DNS rebinding points a foreign name at
  this machine so that the HTTP API is "same origin" to the attacker's page (with its own ``Host``).
  So every request must carry ``Host: <own name>:<port>``, the own names being ``localhost``,
  ``127.0.0.1``, ``[::1]`` and the bound address (for a wildcard bind such as ``0.0.0.0``: this
  machine's hostname, as a wildcard is not a name anyone connects to), the port being the one the
  connection arrived on; and an ``Origin``, when there is one, must be ``<scheme>://<own name>:<port>``.
  Each ``--allow-origin`` entry is allowed as an ``Origin`` and its host and port as a ``Host``
  (the name a page is loaded from is also the ``Host`` it sends). No ``Origin`` at all (curl, the
  bench client, a plain page load) is fine: a browser always sends one on a WebSocket handshake and
  on cross-origin fetches. The rest get 403 before routing (HTTP: with the reason as JSON).
- **A token for any bind that is not loopback** (:func:`~.app.create_app` refuses to build such an
  app without one; ``worldloom play`` generates one and prints ``http://host:port/?token=...``, as
  Jupyter does). Loopback binds need none: the allow-list keeps web pages out, and programs on
  this machine may connect, as they always could. A request carries the token as the ``token``
  query parameter or as the cookie set from it (``HttpOnly``, ``SameSite=Strict``, named per port
  because cookies ignore ports), so the page's own ``/app.js``, ``/ws`` and ``/record`` requests
  carry it without the page knowing it. Compared in constant time.
- **Security headers on every HTTP response**: a CSP that allows only this server's script and
  sockets and the page's inline ``<style>`` by its SHA-256 (no ``unsafe-inline``), ``X-Frame-Options:
  DENY`` (no clickjacking of the key-driven page), ``X-Content-Type-Options: nosniff``, and
  ``Referrer-Policy: no-referrer`` (the token may be in the page URL).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
DEFAULT_PORTS = {"http": 80, "https": 443}
Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]],
                   Awaitable[None]]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """Whether ``host`` binds every interface (``0.0.0.0``, ``::``)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def url_host(host: str) -> str:
    """A host as URLs and Host/Origin headers spell it: lower case, an IPv6 address in brackets."""
    h = host.lower()
    return f"[{h}]" if ":" in h and not h.startswith("[") else h


def own_names(host: str) -> list[str]:
    """The names this server answers to when bound to ``host`` (see the module docstring)."""
    extra = url_host(socket.gethostname() if is_wildcard(host) else host)
    return list(LOOPBACK_NAMES) + ([extra] if extra not in LOOPBACK_NAMES else [])


def parse_origin(origin: str) -> tuple[str, str, int]:
    """``http(s)://host[:port]`` -> ``(scheme, host, port)``; ValueError for anything else
    (a path, a query, credentials, the opaque ``null`` origin, a bad port)."""
    try:
        u = urlsplit(origin.strip())
        port = u.port  # raises on a port that is not a number in 0..65535
        ok = u.scheme in DEFAULT_PORTS and bool(u.hostname) and u.path in ("", "/") and not (u.query or u.fragment) \
            and u.username is None
    except ValueError:  # also an unclosed IPv6 bracket
        ok = False
    if not ok:
        raise ValueError(f"an origin is http(s)://host[:port], got {origin[:80]!r}")
    return u.scheme, url_host(str(u.hostname)), port or DEFAULT_PORTS[u.scheme]


def _parse_host(value: str, default_port: int) -> tuple[str, int]:
    u = urlsplit("//" + value)
    if not u.hostname or u.path or u.query or u.fragment or u.username is not None:
        raise ValueError(value)
    return url_host(u.hostname), u.port or default_port


def content_security_policy(html: str) -> str:
    """The CSP for the bundled page: its own script and sockets, its inline ``<style>`` blocks by hash."""
    styles = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'"
                      for b in re.findall(r"<style>(.*?)</style>", html, re.S)) or "'none'"
    # img-src data: is the page's empty favicon; 'self' in connect-src covers ws:// to the same host (CSP 3)
    return ("default-src 'none'; script-src 'self'; connect-src 'self'; img-src data:; "
            f"style-src {styles}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@dataclass(frozen=True)
class Guard:
    """The allow-list and token of one server (build it with :meth:`create`)."""

    names: tuple[str, ...]
    origins: frozenset[tuple[str, str, int]]
    token: str | None
    headers: tuple[tuple[bytes, bytes], ...]

    @classmethod
    def create(cls, host: str, allow_origins: Iterable[str] = (), token: str | None = None,
               csp: str = "default-src 'none'") -> Guard:
        if token is None and not is_loopback(host):
            raise ValueError(f"serving on {host!r} (not loopback) needs a token: anyone who can reach it could play")
        if token is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", token):  # it goes into URLs and a cookie as is
            raise ValueError("the token must be letters, digits, '-' and '_' (secrets.token_urlsafe)")
        headers = ((b"content-security-policy", csp.encode()), (b"x-frame-options", b"DENY"),
                   (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
        return cls(tuple(own_names(host)), frozenset(parse_origin(o) for o in allow_origins), token, headers)

    @staticmethod
    def cookie_name(port: int | None) -> str:
        return f"worldloom_token_{port}"

    def check(self, scope: Scope) -> str | None:
        """Why this HTTP request or WebSocket handshake is refused (-> 403), or None to let it through."""
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        port = (scope.get("server") or (None, None))[1]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        own = {(n, port) for n in self.names}
        try:
            host = _parse_host(headers.get("host", ""), DEFAULT_PORTS[scheme])
        except ValueError:
            return "missing or malformed Host header"
        if host not in own | {(h, p) for _, h, p in self.origins}:
            shown = f"{host[0]}:{host[1]}"
            return (f"Host {shown[:80]!r} is not this server's (it answers to {', '.join(self.names)} on port "
                    f"{port}); to serve it under that name, start it with --allow-origin {scheme}://{shown[:80]}")
        origin = headers.get("origin")
        if origin is not None:
            try:
                parsed: tuple[str, str, int] | None = parse_origin(origin)
            except ValueError:
                parsed = None
            if parsed not in {(scheme, n, p) for n, p in own} | self.origins:
                return (f"Origin {origin[:80]!r} may not use this server; pages from another origin need "
                        "--allow-origin ORIGIN")
        if self.token is not None and not (self._matches(self.query_token(scope))
                                           or self._matches(self._cookie(headers, port))):
            return "missing or wrong token: open the URL with ?token=... that worldloom play printed"
        return None

    def query_token(self, scope: Scope) -> str | None:
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        return values[-1] if values else None

    def _cookie(self, headers: dict[str, str], port: int | None) -> str | None:
        try:
            morsel = SimpleCookie(headers.get("cookie", "")).get(self.cookie_name(port))
        except CookieError:
            return None
        return None if morsel is None else morsel.value

    def _matches(self, given: str | None) -> bool:
        return given is not None and self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def response_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        """Headers for an HTTP response: the security headers, and the token cookie when the
        request brought a valid token in its query (so that the page's later requests carry it)."""
        out = list(self.headers)
        if self.token is not None and self._matches(self.query_token(scope)):
            port = (scope.get("server") or (None, None))[1]
            out.append((b"set-cookie", f"{self.cookie_name(port)}={self.token}; Path=/; HttpOnly; "
                                       "SameSite=Strict".encode()))
        return out


class GuardMiddleware:
    """ASGI middleware: refuse with 403 what :meth:`Guard.check` refuses (HTTP and WebSocket), and
    add :meth:`Guard.response_headers` to every HTTP response."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app, self.guard = app, guard

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        reason = self.guard.check(scope) if scope["type"] in ("http", "websocket") else None
        if reason is not None:
            await self._deny(scope, receive, send, reason)
        elif scope["type"] != "http":
            await self.app(scope, receive, send)
        else:
            headers = self.guard.response_headers(scope)

            async def send_with_headers(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), *headers]}
                await send(message)

            await self.app(scope, receive, send_with_headers)

    async def _deny(self, scope: Scope, receive: Callable[[], Awaitable[dict[str, Any]]],
                    send: Callable[[dict[str, Any]], Awaitable[None]], reason: str) -> None:
        if scope["type"] == "websocket":
            # a close before accept is a bare 403 (ASGI spec). Not the denial-response extension: a
            # browser could not read its body anyway, and uvicorn 0.54 logs an error after each one
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "http.response.start", "status": 403,
                    "headers": [*self.guard.response_headers(scope), (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps({"error": reason}).encode()})

"""Who may talk to the dashboard: a Host/Origin allow-list, and a token when one is set.

- **Host and Origin.** A page on any web site can make a visitor's browser send requests to
  ``http://127.0.0.1:8765`` under a name its DNS points there (DNS rebinding), and read the
  answers as same-origin. Every request's ``Host`` must therefore name an allowed host (the
  loopback names, the interface the dashboard listens on, and ``--allow-host`` names), and an
  ``Origin`` header, when a browser sends one, must be ``http(s)://`` an allowed host; else 403.
- **Token.** With a token (``--token``, ``$MIXOPT_DASHBOARD_TOKEN``, or one generated when the
  dashboard shows a service's jobs or listens beyond loopback), every route but ``/health``
  needs it: as ``Authorization: Bearer <token>``, or as the cookie that opening
  ``/?token=<token>`` once sets (HttpOnly, SameSite=Strict), so a browser needs the link
  printed at start and nothing else. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
ANY_INTERFACE = frozenset({"0.0.0.0", "::", ""})
COOKIE = "mixopt_dashboard"
PUBLIC_PATHS = frozenset({"/health"})


def host_name(value: str) -> str:
    """The host of a ``Host`` header value (``[::1]:8765`` → ``::1``), lower-cased."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def allowed_hosts(bind: str, extra: list[str] | None = None) -> frozenset[str]:
    hosts = set(LOOPBACK_HOSTS)
    if bind not in ANY_INTERFACE:
        hosts.add(bind.strip().strip("[]").lower())
    hosts.update(h.strip().lower() for h in extra or [] if h.strip())
    return frozenset(hosts)


class Guard:
    """ASGI middleware enforcing the rules of the module docstring."""

    def __init__(self, app: ASGIApp, *, hosts: frozenset[str], token: str | None) -> None:
        self.app = app
        self.hosts = hosts
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if host_name(headers.get("host", "")) not in self.hosts:
            await _reply(send, 403, "host not allowed (see mixopt dashboard --allow-host)")
            return
        origin = headers.get("origin")
        if origin is not None and not self._origin_ok(origin):
            await _reply(send, 403, "origin not allowed")
            return
        if self.token is None or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = query.get("token", [None])[0]
        if given is not None and scope["path"] == "/" and self._matches(given):
            await _set_cookie_and_redirect(send, given)
            return
        if self._matches(_bearer(headers.get("authorization", ""))) or self._matches(
            _cookie(headers.get("cookie", ""))
        ):
            await self.app(scope, receive, send)
            return
        await _reply(
            send,
            401,
            "this dashboard needs its token: open the link mixopt dashboard printed "
            "(/?token=...), or send Authorization: Bearer <token>",
        )

    def _origin_ok(self, origin: str) -> bool:
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and (parts.hostname or "") in self.hosts

    def _matches(self, presented: str | None) -> bool:
        if not presented or self.token is None:
            return False
        return hmac.compare_digest(presented.encode(), self.token.encode())


def _bearer(value: str) -> str | None:
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def _cookie(value: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(value)
    except Exception:  # a malformed Cookie header is no credential
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


async def _set_cookie_and_redirect(send: Send, token: str) -> None:
    cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    headers = [(b"location", b"/"), (b"set-cookie", cookie.encode()), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

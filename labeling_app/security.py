"""What makes the app safe to put on a network, as one ASGI middleware in front of the UI and the API.

    app.add_middleware(Guard, config=Config.from_env(flags), sessions=sessions)

For every request, before any route runs:
- Cross-site requests: a state-changing request (any method but GET/HEAD/OPTIONS, and every
  websocket) whose browser names a foreign origin (`Origin`, else `Referer`, or `Sec-Fetch-Site:
  cross-site`) is refused with 403. Allowed: the app's own origin (the scheme and `Host` the browser
  used: a browser cannot forge those) and the origins configured with `--allowed-origin` /
  `RLHF_ALLOWED_ORIGINS`. Scripts send no `Origin` and pass (they hold no browser cookie). CORS
  answers only the configured origins (starlette's CORSMiddleware, which also turns gradio's own
  origin-echoing CORS off).
- Sizes: the body of a request is capped per route kind (`Config.body_limit`): 413 with a one-line
  message, from `Content-Length` at once or while a chunked body streams in.
- Cookies: gradio's session cookies leave as `HttpOnly; SameSite=Lax` (`Secure` over https),
  never gradio's `SameSite=None`.
- Logins: `GET /` without a valid login goes to the login page (`/login`), never to the app or
  gradio's API description; no state-changing gradio route (`/gradio_api/...`) runs without one.
- Errors: an unexpected exception is logged once with a reference id (`internal_error`); the
  caller gets a 500 naming the reference, never the exception.
The client address of the request is kept in `CLIENT` for the login throttle (gradio's login
callback gets no request).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from rlhf.data.formats import MAX_TEXT_CHARS
from rlhf.errors import RlhfError

log = logging.getLogger("labeling_app")
CLIENT: contextvars.ContextVar[str] = contextvars.ContextVar("labeling_app_client", default="")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
KIB, MIB = 1024, 1024 * 1024
ORIGIN = re.compile(r"^(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(:\d{1,5})?$")


# --------------------------------------------------------------------------- configuration


def parse_origin(text: str) -> str:
    """`scheme://host[:port]`, lower case, default port dropped; RlhfError for anything else (a path, a wildcard)."""
    origin = (text or "").strip().lower().rstrip("/")
    m = ORIGIN.match(origin)
    if not m:
        raise RlhfError(f"allowed origin {text!r}: write it as scheme://host[:port], e.g. https://labels.example.com")
    scheme, host, port = m.groups()
    if port and int(port[1:]) == {"http": 80, "https": 443}[scheme]:
        port = None
    return f"{scheme}://{host}{port or ''}"


def same_origin(origin: str, scheme: str, host: str) -> bool:
    """Whether `origin` is the app's own origin as this request reached it (`scheme` + the `Host` header)."""
    try:
        return parse_origin(origin) == parse_origin(f"{scheme}://{host}")
    except RlhfError:
        return False


@dataclass(frozen=True)
class Config:
    allowed_origins: tuple[str, ...] = ()  # besides the app's own origin, which is always allowed
    max_upload_bytes: int = 64 * MIB  # an uploaded file (admin imports); gradio's max_file_size
    api_body_bytes: int = 6 * MAX_TEXT_CHARS + 64 * KIB  # a JSON body: the longest text, every char \\u-escaped
    event_body_bytes: int = 1 * MIB  # a gradio event: all inputs of one listener
    login_body_bytes: int = 16 * KIB
    other_body_bytes: int = 64 * KIB

    @classmethod
    def from_env(cls, allowed_origins: list[str] | tuple[str, ...] = (), max_upload_mb: int | None = None) -> "Config":
        """Flags first, then `RLHF_ALLOWED_ORIGINS` (comma or space separated) and `RLHF_MAX_UPLOAD_MB`."""
        named = list(allowed_origins) + re.split(r"[,\s]+", os.environ.get("RLHF_ALLOWED_ORIGINS", "").strip())
        origins = tuple(dict.fromkeys(parse_origin(o) for o in named if o))
        if max_upload_mb is None:
            raw = os.environ.get("RLHF_MAX_UPLOAD_MB", "64")
            try:
                max_upload_mb = int(raw)
            except ValueError:
                raise RlhfError(f"RLHF_MAX_UPLOAD_MB={raw!r}: expected a whole number of megabytes") from None
        if max_upload_mb < 1:
            raise RlhfError(f"max upload size {max_upload_mb} MB: use 1 or more")
        return cls(origins, max_upload_bytes=max_upload_mb * MIB)

    def body_limit(self, path: str) -> tuple[int, str]:
        """(most bytes, what the route is) for a request body on `path`."""
        if path.startswith(("/gradio_api/upload", "/gradio_api/process_recording")):
            return self.max_upload_bytes + 64 * KIB, "an upload"
        if path.rstrip("/") in ("/login", "/api/login", "/logout"):
            return self.login_body_bytes, "a login"
        if path.startswith("/api/"):
            return self.api_body_bytes, "an API call"
        if path.startswith("/gradio_api/"):
            return self.event_body_bytes, "a page action"
        return self.other_body_bytes, "this request"


# --------------------------------------------------------------------------- errors


def internal_error(exc: BaseException, where: str = "") -> str:
    """Log an unexpected exception once, with its traceback, under a fresh reference id; returns the id."""
    ref = secrets.token_hex(4)
    log.error("internal error, reference %s%s", ref, f" ({where})" if where else "",
              exc_info=(type(exc), exc, exc.__traceback__))
    return ref


def internal_error_message(ref: str) -> str:
    """What a person sees instead of the exception."""
    return f"Something went wrong on the server (reference {ref}). Try again; if it persists, tell your admin the reference."


# --------------------------------------------------------------------------- the middleware


class Guard:
    """Pure ASGI middleware (no BaseHTTPMiddleware: streaming responses and gradio's SSE pass untouched)."""

    def __init__(self, app, config: Config, sessions=None):
        self.app, self.config, self.sessions = app, config, sessions

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = _headers(scope)
        method = scope.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET"
        path = scope.get("path", "/")
        CLIENT.set((scope.get("client") or ("", 0))[0] or "")
        if method not in SAFE_METHODS:
            refused = self.foreign_origin(scope, headers)
            if refused:
                return await _reply(scope, receive, send, 403, refused)
            if path.startswith("/gradio_api/") and self.sessions is not None and not self.sessions.user_for(headers):
                # gradio leaves a few (cancel, reset, stream, its editor) open: nothing of the UI changes without a login
                return await _reply(scope, receive, send, 401, "log in first: your session has ended or never began")
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        limit, what = self.config.body_limit(path)
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return await _reply(scope, receive, send, 413, _too_large(what, limit))
        if method in ("GET", "HEAD") and path == "/" and self.sessions is not None and not self.sessions.user_for(headers):
            return await _redirect(send, "/login")

        state = {"started": False, "refused": False, "seen": 0}
        secure = scope.get("scheme") == "https"

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > limit and not state["refused"]:
                    state["refused"] = True
                    if not state["started"]:
                        await _send_json(send, 413, _too_large(what, limit))
                        state["started"] = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if state["refused"]:
                return  # the 413 already went out; the route's late answer is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
                message = {**message, "headers": [(k, _lax_cookie(v, secure) if k.lower() == b"set-cookie" else v)
                                                  for k, v in message.get("headers", [])]}
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception as exc:  # noqa: BLE001 - the one place an unexpected error becomes a reference
            ref = internal_error(exc, f"{method} {path}")
            if not state["started"]:
                await _send_json(send, 500, internal_error_message(ref))

    def foreign_origin(self, scope, headers: dict) -> str:
        """Why a state-changing request is refused as cross-site, or "" when it may go on."""
        origin = headers.get("origin")
        if origin is None and headers.get("referer"):
            parts = urlsplit(headers["referer"])
            origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "null"
        if origin is None:
            if headers.get("sec-fetch-site") == "cross-site":
                return "cross-site request refused: this browser says the request comes from another site"
            return ""  # not a browser (scripts, the load bench): it carries no one's cookie
        scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
        if same_origin(origin, scheme, headers.get("host", "")):
            return ""
        try:
            if parse_origin(origin) in self.config.allowed_origins:
                return ""
        except RlhfError:
            pass
        return (f"cross-site request refused: origin {origin[:100]!r} is not allowed (the app's own origin is; "
                f"add others with --allowed-origin or RLHF_ALLOWED_ORIGINS)")


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _too_large(what: str, limit: int) -> str:
    size = f"{limit // MIB} MB" if limit >= MIB else f"{limit // KIB} KB"
    return f"request too large: {what} may send at most {size}"


async def _send_json(send, status: int, detail: str, headers: list | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


async def _reply(scope, receive, send, status: int, detail: str) -> None:
    if scope["type"] == "websocket":  # refuse the handshake
        await receive()
        await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
        return
    await _send_json(send, status, detail)


async def _redirect(send, location: str) -> None:
    await send({"type": "http.response.start", "status": 302,
                "headers": [(b"location", location.encode()), (b"content-length", b"0"),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": b""})


def _lax_cookie(value: bytes, secure: bool) -> bytes:
    """gradio's session cookies (`access-token-*`) as `HttpOnly; SameSite=Lax` (+ `Secure` over https)."""
    text = value.decode("latin-1")
    if not text.startswith("access-token"):
        return value
    parts = [p.strip() for p in text.split(";")]
    kept = [parts[0]] + [p for p in parts[1:] if p and p.split("=")[0].strip().lower() not in ("samesite", "secure", "httponly")]
    kept += ["HttpOnly", "SameSite=Lax"] + (["Secure"] if secure else [])
    return "; ".join(kept).encode("latin-1")


def cookies(headers: dict) -> dict[str, str]:
    """The request's cookies by name."""
    jar = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # noqa: BLE001 - a malformed cookie header is no cookie
        return {}
    return {k: m.value for k, m in jar.items()}

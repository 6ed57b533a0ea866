"""``realtime serve``: one HTTP server (aiohttp) on one port for the page, the websocket and WebRTC.

- ``GET /`` and the files next to it: the browser page (``web/``);
- ``GET /v1/realtime``: the websocket endpoint;
- ``POST /v1/realtime/calls``: WebRTC signalling as OpenAI does it: the body is the browser's SDP offer
  (``application/sdp``, or a multipart form with ``sdp`` and an optional ``session`` object applied as a
  ``session.update``); the answer is ``201 Created`` with the SDP answer (:mod:`realtime.webrtc`) and
  ``Location: /v1/realtime/calls/{call_id}`` (the call id is the session's id);
- ``POST /v1/realtime/calls/{call_id}/hangup``: ends the call (``404`` for a call that is not live);
- ``GET /v1/status`` (an extension): the load and what the process holds, as JSON (:meth:`RealtimeServer._status`).

Every endpoint but the page checks an optional API key (``Authorization: Bearer KEY``; for the websocket also the
``openai-insecure-api-key.KEY`` subprotocol that browsers use) and an optional origin allow-list, and share the
session limit and admission control (:mod:`realtime.admission`: no new session while the replies of the last 30 s took
longer than ``latency_budget_ms`` at the median): past either a websocket is told why in an ``error`` event
(``session_limit_reached``, ``server_busy``) and closed (code 1013, try again later), a call gets ``503``. A websocket
that sends no client event for ``idle_timeout_s`` is told so (an ``idle_timeout`` error) and closed (code 1000, ``idle
timeout``): pings and pongs do not count. A websocket client that stops reading (no data taken for ``send_timeout_s``
while an event waits) is closed with code 1008 and dropped: what waits for a client is bounded by the socket's buffers
and the session's bounded output queue, never by how long it has not read. A call ends when its peer hangs up or goes
away, or on the hang-up endpoint. A session that fails never affects another.

The call endpoints answer cross-origin browsers (CORS) only from the allowed origins (``*``: any): a
preflight (``OPTIONS``) is answered, and every response carries ``Access-Control-Allow-Origin`` and
exposes ``Location``. With no allowed origin, calls are same-origin only (no CORS headers).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import socket
import ssl
import struct
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from aiortc import RTCIceServer

from realtime import heap
from realtime.admission import Admission
from realtime.commands import Send
from realtime.connection import RealtimeConnection
from realtime.events import ReplyDone
from realtime.models import Models
from realtime.protocol import MAX_EVENT_BYTES, RealtimeProtocol
from realtime.session import SessionConfig
from realtime.webrtc import SignallingError, WebRtcCall, parse_ice_server

log = logging.getLogger(__name__)

PATH = "/v1/realtime"
CALLS_PATH = "/v1/realtime/calls"
HANGUP_PATH = CALLS_PATH + "/{call_id}/hangup"
STATUS_PATH = "/v1/status"
HEARTBEAT_S = 20.0
"""The websocket's ping interval: a peer that answers no ping within half of it is gone."""
CLOSE_GRACE_S = 2.0
"""How long a client that stopped reading has to read what was sent and the close (1008) before it is dropped."""
CORS_MAX_AGE_S = 600
"""How long a browser may cache a preflight's answer."""
WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
_KEY_SUBPROTOCOL = "openai-insecure-api-key."
_PAGE_HEADERS = {
    # Nothing is fetched from anywhere but this server; the page cannot be framed.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    max_sessions: int = 8
    latency_budget_ms: float | None = 3000.0
    """Admission control: no new session while the median first-packet delay of the last 30 s of replies is past this
    (ms; None: only ``max_sessions`` limits). 3000 ms: two cores measured p50 1.1 s at one session, 1.8 s at two,
    3.0 s at four and 6.2 s at eight, all talking at once (README, concurrency)."""
    api_key: str | None = None
    allowed_origins: tuple[str, ...] = ()
    """Origins allowed to connect from a browser, and to call cross-origin (CORS); ``*``: any. Empty: any origin may
    open the websocket, and calls are same-origin only. Clients that send no Origin are not browsers."""
    idle_timeout_s: float = 300.0
    """A websocket that sends no client event this long (s) is closed."""
    send_timeout_s: float = 10.0
    """A websocket client that takes none of the server's data this long (s) while an event waits for it is not
    reading: it is closed (code 1008), and dropped if it does not read the close either within :data:`CLOSE_GRACE_S`."""
    max_message_bytes: int = MAX_EVENT_BYTES
    session: SessionConfig = field(default_factory=SessionConfig)
    ice_servers: tuple[str, ...] = ()
    """STUN/TURN servers for WebRTC (``stun:HOST:PORT``, ``turn:USER:PASSWORD@HOST:PORT``); none by default."""
    certfile: str | None = None
    """Serve HTTPS with this certificate chain (browsers give a page the microphone only over HTTPS, or
    on this machine over plain HTTP)."""
    keyfile: str | None = None
    web_root: Path | None = WEB_ROOT
    """The page's files (None: no page)."""
    call_connect_timeout_s: float = 30.0
    """A WebRTC call whose peer has not connected this long after the answer is dropped."""

    def __post_init__(self) -> None:
        self.rtc_ice_servers()  # a bad one is an error at once, not at the first call

    def rtc_ice_servers(self) -> list[RTCIceServer]:
        return [parse_ice_server(url) for url in self.ice_servers]

    @property
    def scheme(self) -> str:
        return "https" if self.certfile else "http"


SessionScope = Callable[[RealtimeConnection], AbstractAsyncContextManager[object]]
"""Wraps each session's life (an event bus announces it, watches it and takes control messages for it)."""


class RealtimeServer:
    """Serves sessions until :meth:`stop`; :attr:`port` is the bound port (useful with port 0)."""

    def __init__(self, models: Models, options: ServerOptions | None = None, *, session_scope: SessionScope | None = None) -> None:
        self.models = models
        self.options = options or ServerOptions()
        self.session_scope = session_scope
        self.connections: set[RealtimeConnection] = set()
        """Every live session, websocket and WebRTC alike."""
        self.admission = Admission(self.options.latency_budget_ms)
        self.heap = heap.Releases()
        self._ice_servers = self.options.rtc_ice_servers()
        self._sockets: set[web.WebSocketResponse] = set()
        self._calls: dict[str, _LiveCall] = {}
        """Live calls by id."""
        self._runner: web.AppRunner | None = None
        self._stopped = asyncio.Event()

    @property
    def port(self) -> int:
        assert self._runner is not None, "the server is not started"
        return self._runner.addresses[0][1]

    @property
    def url(self) -> str:
        """The page's address (on this machine, when the server listens on every interface)."""
        host = "127.0.0.1" if self.options.host in ("", "0.0.0.0", "::") else self.options.host
        return f"{self.options.scheme}://{f'[{host}]' if ':' in host else host}:{self.port}/"

    async def start(self) -> RealtimeServer:
        options = self.options
        app = web.Application()
        app.router.add_get(PATH, self._websocket)
        app.router.add_get(PATH + "/", self._websocket)
        app.router.add_post(CALLS_PATH, self._call)
        app.router.add_post(HANGUP_PATH, self._hangup)
        app.router.add_get(STATUS_PATH, self._status)
        for route in (CALLS_PATH, HANGUP_PATH):
            app.router.add_route("OPTIONS", route, self._preflight)
        app.on_response_prepare.append(self._add_cors_headers)
        if options.web_root is not None and options.web_root.is_dir():
            app.router.add_get("/", _page_file(options.web_root / "index.html"))
            for path in sorted(options.web_root.iterdir()):
                if path.is_file():
                    app.router.add_get(f"/{path.name}", _page_file(path))
        tls = None
        if options.certfile:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(options.certfile, options.keyfile)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, options.host, options.port, ssl_context=tls).start()
        return self

    async def stop(self) -> None:
        """Close every session, then the server."""
        for websocket in list(self._sockets):
            await websocket.close(code=1001, message=b"server shutting down")
        tasks = [live.task for live in self._calls.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.heap.settle()
        self._stopped.set()

    async def serve_forever(self) -> None:
        """Serve until cancelled or stopped (start first)."""
        assert self._runner is not None, "the server is not started"
        await self._stopped.wait()

    # ---- checks shared by both endpoints ----------------------------------------------------------

    def _refusal(self, request: web.Request) -> web.Response | None:
        origin = request.headers.get("Origin")
        if origin and self.options.allowed_origins and not self._origin_allowed(origin):
            return web.Response(status=403, text=f"origin {origin} is not allowed\n")
        if self.options.api_key and not _authorized(request, self.options.api_key):
            return web.Response(status=401, text="missing or wrong API key\n")
        return None

    def _origin_allowed(self, origin: str) -> bool:
        """Whether ``origin`` is on the allow-list (always false for an empty one)."""
        return origin in self.options.allowed_origins or "*" in self.options.allowed_origins

    def _refused_session(self) -> tuple[str, str] | None:
        """Why a new session cannot be had now: (error code, message), or None."""
        if len(self.connections) >= self.options.max_sessions:
            return "session_limit_reached", f"the server is at its limit of {self.options.max_sessions} sessions; try again later"
        busy = self.admission.refusal(len(self.connections), self._waiting_ms())
        return None if busy is None else ("server_busy", busy)

    def _waiting_ms(self) -> float:
        """The longest any reply in progress has waited for its first audio so far (ms)."""
        return max((c.session.turns.waiting_ms() for c in self.connections), default=0.0)

    async def _status(self, request: web.Request) -> web.Response:
        """``GET /v1/status`` (an extension, behind the same API key): the load a new session would meet and what the
        process holds, as JSON: ``sessions`` (live, websocket and WebRTC), ``calls`` (of them WebRTC),
        ``max_sessions``, ``busy`` (why a new session would get ``server_busy`` now, or null), ``refused`` (sessions
        refused so far for load), ``median_first_packet_delay_ms`` (replies of the admission window; null: too few),
        ``asyncio_tasks`` and ``threads`` (for leak checks: ``benchmarks.soak`` reads them)."""
        if (refusal := self._refusal(request)) is not None:
            return refusal
        return web.json_response({
            "sessions": len(self.connections), "calls": len(self._calls), "max_sessions": self.options.max_sessions,
            "busy": self.admission.reason(len(self.connections), self._waiting_ms()), "refused": self.admission.refused,
            "median_first_packet_delay_ms": self.admission.median_ms(), "asyncio_tasks": len(asyncio.all_tasks()),
            "threads": threading.active_count(),
        })

    async def _session(
        self, connection: RealtimeConnection, body: Callable[[], Awaitable[None]], hang_up: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``body`` for the life of a session, inside its scope; free it afterwards. ``hang_up`` ends the session's
        transport when the user's silence ends the call (the session's ``idle_hangup_ms``)."""
        self.connections.add(connection)
        connection.on_reply = self._measured
        try:
            async with connection, (self.session_scope or _no_scope)(connection):
                watcher = asyncio.create_task(_on_hang_up(connection, hang_up), name=f"{connection.id}:hang-up")
                try:
                    await body()
                finally:
                    watcher.cancel()
        finally:
            self.connections.discard(connection)
            if not self.connections:  # a quiet moment: give the freed memory of the sessions back (realtime.heap)
                await self.heap.now()

    def _measured(self, reply: ReplyDone) -> None:
        """A session's reply finished: its first-packet delay is a measure of the server's load, and its buffers are freed
        (given back to the system now and then: :class:`~realtime.heap.Releases`)."""
        delay = reply.latency.get("first_packet_delay_ms")
        if isinstance(delay, (int, float)):
            self.admission.observe(float(delay))
        self.heap.after_reply()

    # ---- the websocket -----------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        websocket = web.WebSocketResponse(
            protocols=("realtime",),  # a browser's key subprotocol is never echoed
            max_msg_size=2 * self.options.max_message_bytes,  # past this the transport drops the connection
            heartbeat=HEARTBEAT_S,
            # No permessage-deflate: base64 audio shrinks by a quarter at most, for CPU the replies need, and aiohttp
            # compresses a large frame in a shielded task whose failure, once its client is gone, is logged as a
            # "Task exception was never retrieved" (seen in benchmarks.soak's abrupt sessions).
            compress=False,
        )
        if not websocket.can_prepare(request).ok:
            return web.Response(status=426, text=f"connect to {PATH} with a websocket\n", headers={"Upgrade": "websocket"})
        await websocket.prepare(request)
        self._sockets.add(websocket)
        try:
            await self._websocket_session(request, websocket)
        finally:
            self._sockets.discard(websocket)
        return websocket

    async def _websocket_session(self, request: web.Request, websocket: web.WebSocketResponse) -> None:
        async def send(event: dict[str, Any]) -> None:
            if websocket.closed:
                return
            try:
                async with asyncio.timeout(self.options.send_timeout_s):
                    await websocket.send_str(json.dumps(event))
            except ConnectionError:
                return
            except TimeoutError:
                _drop_unread(request, websocket, self.options.send_timeout_s)

        if (refused := self._refused_session()) is not None:
            code, message = refused
            await send({"type": "error", "event_id": "event_000000", "error": {
                "type": "invalid_request_error", "code": code, "message": message}})
            await websocket.close(code=1013, message=code.replace("_", " ").encode())
            return
        connection = RealtimeConnection(self.models, send, config=self.options.session, beta=_beta(request))

        async def hang_up() -> None:  # the receive loop then ends
            await websocket.close(code=1000, message=b"the user was silent")

        await self._session(connection, lambda: self._receive(websocket, connection), hang_up)

    async def _receive(self, websocket: web.WebSocketResponse, connection: RealtimeConnection) -> None:
        """Client events into the session until the client leaves or sends none for ``idle_timeout_s``. The deadline is
        the session's own: aiohttp restarts a receive timeout on every pong, and the server pings every 20 s."""
        idle_s = self.options.idle_timeout_s
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout_at(loop.time() + idle_s):
                    message = await websocket.receive()
            except TimeoutError:
                await connection.protocol_send_error("idle_timeout", f"no client event for {idle_s:g} s")
                await websocket.close(code=1000, message=b"idle timeout")
                return
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                return  # closed, closing or broken
            await connection.handle(message.data)

    # ---- WebRTC signalling -------------------------------------------------------------------------

    async def _call(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        try:
            offer, session = await _read_offer(request)
        except SignallingError as exc:
            return _error_response(exc.status, "invalid_offer", str(exc))
        if session is not None and (refused := _refused_settings(session, self.options.session, _beta(request))) is not None:
            return _error_response(400, refused["code"], refused["message"], param=refused["param"])
        if (busy := self._refused_session()) is not None:
            return _error_response(503, *busy, headers={"Retry-After": "5"})
        call = WebRtcCall(self.models, config=self.options.session, beta=_beta(request), ice_servers=self._ice_servers)
        self.connections.add(call.connection)  # the slot is taken from now on
        try:
            answer = await call.answer(offer, local_peer=_is_loopback(request.remote))
        except BaseException as exc:
            self.connections.discard(call.connection)
            await call.close()
            await call.connection.close()
            if isinstance(exc, SignallingError):
                return _error_response(exc.status, "invalid_offer", str(exc))
            raise
        task = asyncio.create_task(self._run_call(call, session), name=f"{call.id}:call")
        self._calls[call.id] = _LiveCall(call, task)
        task.add_done_callback(lambda _: self._calls.pop(call.id, None))
        return web.Response(status=201, text=answer, content_type="application/sdp", headers={"Location": f"{CALLS_PATH}/{call.id}"})

    async def _hangup(self, request: web.Request) -> web.Response:
        """End a live call; answers once its session is freed."""
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        call_id = request.match_info["call_id"]
        live = self._calls.get(call_id)
        if live is None:
            return _error_response(404, "call_not_found", f"no live call {call_id!r}")
        live.call.end()
        await asyncio.wait([live.task])  # never cancels the call's task, even if this request is cancelled
        return web.Response(status=200)

    async def _preflight(self, request: web.Request) -> web.Response:
        """A browser asks whether it may call from another origin (CORS preflight; the API key is not sent)."""
        origin = request.headers.get("Origin", "")
        if not self._origin_allowed(origin):
            return web.Response(status=403, text=f"cross-origin calls from {origin or 'this page'} are not allowed\n")
        return web.Response(status=204, headers={
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", ""),
            "Access-Control-Max-Age": str(CORS_MAX_AGE_S),
        })

    async def _add_cors_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """Let an allowed cross-origin page read a call endpoint's responses (errors included) and their Location."""
        origin = request.headers.get("Origin")
        if not request.path.startswith(CALLS_PATH) or not origin or not self._origin_allowed(origin):
            return
        response.headers["Access-Control-Allow-Origin"] = "*" if "*" in self.options.allowed_origins else origin
        response.headers["Access-Control-Expose-Headers"] = "Location"
        response.headers.add("Vary", "Origin")

    async def _run_call(self, call: WebRtcCall, session: dict[str, Any] | None) -> None:
        try:
            await self._session(call.connection, lambda: call.serve(session, self.options.call_connect_timeout_s), _ender(call))
        finally:
            await call.close()


_closing: set[asyncio.Task[None]] = set()
"""Websockets being closed for not reading (their own tasks: the session they belonged to ends meanwhile)."""


def _drop_unread(request: web.Request, websocket: web.WebSocketResponse, waited_s: float) -> None:
    """Close a websocket whose client took no data for ``waited_s``, on a task of its own (:func:`_close_unread`)."""
    task = asyncio.create_task(_close_unread(request, websocket, waited_s), name=f"close unread {request.remote}")
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def _close_unread(request: web.Request, websocket: web.WebSocketResponse, waited_s: float) -> None:
    """Close the websocket with code 1008 (policy violation), so that the events waiting for its client stop piling up.
    A client that has not read what was sent and the close within :data:`CLOSE_GRACE_S` is dropped (the connection is
    aborted: a plain close would wait for the unread data to leave)."""
    if websocket.closed:  # another send gave up first
        return
    log.warning("websocket client %s took no data for %g s: closing it (1008)", request.remote, waited_s)
    transport = request.transport
    try:
        async with asyncio.timeout(CLOSE_GRACE_S):
            await websocket.close(code=1008, message=b"the client is not reading its events", drain=False)
            while transport is not None and transport.get_write_buffer_size():
                await asyncio.sleep(0.05)
    except (TimeoutError, ConnectionError, asyncio.CancelledError):  # (aiohttp's drain future dies with the send)
        if transport is not None:
            _reset(transport)


def _reset(transport: asyncio.Transport) -> None:
    """Drop a connection now, its unsent data with it (a reset: a plain close would keep the data in the kernel until
    the peer reads it)."""
    if (sock := transport.get_extra_info("socket")) is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _on_hang_up(connection: RealtimeConnection, hang_up: Callable[[], Awaitable[None]]) -> None:
    await connection.session.idle_watch.hung_up.wait()
    log.info("session %s: the user was silent; ending it", connection.id)
    await hang_up()


def _ender(call: WebRtcCall) -> Callable[[], Awaitable[None]]:
    async def end() -> None:
        call.end()

    return end


@dataclass(frozen=True)
class _LiveCall:
    call: WebRtcCall
    task: asyncio.Task[None]
    """Runs the call, and frees it when it ends."""


async def _read_offer(request: web.Request) -> tuple[str, dict[str, Any] | None]:
    """The SDP offer and the optional session settings of a ``POST /v1/realtime/calls``."""
    if request.content_type == "application/sdp":
        return _offer_text(await request.read(), request.charset), None
    if request.content_type != "multipart/form-data":
        raise SignallingError("send the SDP offer as application/sdp (or a multipart form with sdp and session)", status=415)
    try:
        form = await request.post()
    except ValueError as exc:  # aiohttp's multipart reader: no or a wrong boundary, a broken part
        raise SignallingError(f"the body is not a multipart form: {exc}") from exc
    offer, session = _form_text(form.get("sdp")), _form_text(form.get("session"))
    if offer is None:
        raise SignallingError("the form has no sdp field")
    if session is None:
        return offer, None
    try:
        settings = json.loads(session)
    except (ValueError, RecursionError) as exc:  # (nested too deep for the parser)
        raise SignallingError(f"the session field is not JSON: {exc}") from exc
    if not isinstance(settings, dict):
        raise SignallingError("the session field must be a JSON object")
    return offer, settings


def _offer_text(body: bytes, charset: str | None) -> str:
    """An ``application/sdp`` body as text, in its charset (SDP's own is UTF-8)."""
    try:
        return body.decode(charset or "utf-8")
    except (LookupError, UnicodeDecodeError) as exc:
        raise SignallingError(f"the offer is not text in charset {charset or 'utf-8'}: {exc}") from exc


def _form_text(value: object) -> str | None:
    """A form field as text, whether sent as a plain field, with a content type, or as a file."""
    if isinstance(value, web.FileField):
        value = value.file.read()
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _refused_settings(session: dict[str, Any], config: SessionConfig, beta: bool) -> dict[str, Any] | None:
    """The ``error`` object of a call's session settings that a ``session.update`` would refuse (None: they are good),
    so that a bad form is refused with the call (400) rather than after it was answered."""
    trial = RealtimeProtocol("sess_check", config, beta=beta)
    for command in trial.receive(json.dumps({"type": "session.update", "session": session})):
        if isinstance(command, Send) and command.event["type"] == "error":
            return command.event["error"]
    return None


def _error_response(
    status: int, code: str, message: str, *, param: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    error = {"error": {"type": "invalid_request_error", "code": code, "message": message, "param": param}}
    return web.json_response(error, status=status, headers=headers)


def _page_file(path: Path) -> Callable[[web.Request], Any]:
    async def serve(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers=_PAGE_HEADERS)

    return serve


@contextlib.asynccontextmanager
async def _no_scope(connection: RealtimeConnection) -> AsyncIterator[None]:
    yield


def _is_loopback(address: str | None) -> bool:
    """Whether a peer's address is on this machine (False for none, as on a Unix socket)."""
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(address or "").is_loopback
    return False


def _beta(request: web.Request) -> bool:
    return "realtime=v1" in request.headers.get("OpenAI-Beta", "")


def _authorized(request: web.Request, api_key: str) -> bool:
    offered = [request.headers.get("Authorization", "").removeprefix("Bearer ").strip()]
    offered += [
        p.strip().removeprefix(_KEY_SUBPROTOCOL)
        for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
        if p.strip().startswith(_KEY_SUBPROTOCOL)
    ]
    return any(hmac.compare_digest(key.encode(), api_key.encode()) for key in offered if key)

"""``realtime serve``: the websocket voice endpoint ``/v1/realtime``, many isolated sessions on shared models.

Checks at the handshake: the path, an optional API key (``Authorization: Bearer KEY``, or the
``openai-insecure-api-key.KEY`` subprotocol that browsers use) and an optional origin allow-list. A
connection beyond the session limit is told why in an ``error`` event and closed (code 1013, try again
later). A session that hears nothing from its client for ``idle_timeout_s`` is closed; one that fails
never affects another.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from realtime.connection import RealtimeConnection
from realtime.models import Models
from realtime.protocol import MAX_EVENT_BYTES
from realtime.session import SessionConfig

log = logging.getLogger(__name__)

PATH = "/v1/realtime"
_KEY_SUBPROTOCOL = "openai-insecure-api-key."


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    max_sessions: int = 8
    api_key: str | None = None
    allowed_origins: tuple[str, ...] = ()
    """Origins allowed to connect from a browser (empty: any). Clients that send no Origin are not browsers."""
    idle_timeout_s: float = 300.0
    max_message_bytes: int = MAX_EVENT_BYTES
    session: SessionConfig = field(default_factory=SessionConfig)


SessionScope = Callable[[RealtimeConnection], AbstractAsyncContextManager[object]]
"""Wraps each session's life (an event bus announces it, watches it and takes control messages for it)."""


class RealtimeServer:
    """Serves sessions until :meth:`stop`; :attr:`port` is the bound port (useful with port 0)."""

    def __init__(self, models: Models, options: ServerOptions | None = None, *, session_scope: SessionScope | None = None) -> None:
        self.models = models
        self.options = options or ServerOptions()
        self.session_scope = session_scope
        self.connections: set[RealtimeConnection] = set()
        self._server: Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not started"
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> RealtimeServer:
        self._server = await serve(
            self._session,
            self.options.host,
            self.options.port,
            process_request=self._check,
            select_subprotocol=_select_subprotocol,
            max_size=2 * self.options.max_message_bytes,  # past this the transport drops the connection
            ping_interval=20,
        )
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def serve_forever(self) -> None:
        """Serve until cancelled (start first)."""
        assert self._server is not None, "the server is not started"
        await self._server.serve_forever()

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0].rstrip("/") != PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, f"no endpoint here; connect to {PATH}\n")
        origin = request.headers.get("Origin")
        if origin and self.options.allowed_origins and origin not in self.options.allowed_origins:
            return connection.respond(HTTPStatus.FORBIDDEN, f"origin {origin} is not allowed\n")
        if self.options.api_key and not _authorized(request, self.options.api_key):
            return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong API key\n")
        return None

    async def _session(self, websocket: ServerConnection) -> None:
        assert websocket.request is not None
        beta = "realtime=v1" in websocket.request.headers.get("OpenAI-Beta", "")

        async def send(event: dict[str, Any]) -> None:
            with contextlib.suppress(ConnectionClosed):
                await websocket.send(json.dumps(event))

        if len(self.connections) >= self.options.max_sessions:
            refusal = {"type": "error", "event_id": "event_000000", "error": {
                "type": "invalid_request_error", "code": "session_limit_reached",
                "message": f"the server is at its limit of {self.options.max_sessions} sessions; try again later"}}
            await send(refusal)
            await websocket.close(1013, "session limit reached")
            return
        connection = RealtimeConnection(self.models, send, config=self.options.session, beta=beta)
        self.connections.add(connection)
        try:
            async with connection, (self.session_scope or _no_scope)(connection):
                await self._receive(websocket, connection)
        finally:
            self.connections.discard(connection)

    async def _receive(self, websocket: ServerConnection, connection: RealtimeConnection) -> None:
        while True:
            try:
                message = await asyncio.wait_for(websocket.recv(), self.options.idle_timeout_s)
            except TimeoutError:
                await connection.protocol_send_error("idle_timeout", f"no client event for {self.options.idle_timeout_s:g} s")
                await websocket.close(1000, "idle timeout")
                return
            except ConnectionClosed:
                return
            try:
                await connection.handle(message)
            except Exception as exc:  # noqa: BLE001 - one bad event never ends the session
                log.exception("session %s: event failed", connection.id)
                await connection.protocol_send_error("server_error", f"the event failed: {exc}")


@contextlib.asynccontextmanager
async def _no_scope(connection: RealtimeConnection) -> AsyncIterator[None]:
    yield


def _authorized(request: Request, api_key: str) -> bool:
    offered = [request.headers.get("Authorization", "").removeprefix("Bearer ").strip()]
    offered += [
        p.strip().removeprefix(_KEY_SUBPROTOCOL)
        for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
        if p.strip().startswith(_KEY_SUBPROTOCOL)
    ]
    return any(hmac.compare_digest(key.encode(), api_key.encode()) for key in offered if key)


def _select_subprotocol(connection: ServerConnection, subprotocols: list[str]) -> str | None:
    """Answer a browser's ``realtime`` subprotocol (it also carries the key, which is never echoed)."""
    return "realtime" if "realtime" in subprotocols else None

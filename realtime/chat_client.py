"""A streaming client for OpenAI-compatible chat completion servers (vLLM, llama.cpp's server, SGLang, ...).

Requests that fail before any text arrived (connection refused or reset, 429, 502-504) are retried with a
short back-off; after that, or when the server does not answer a request or stops sending mid-stream for
``read_timeout_s`` (never retried: the server has the request), the caller gets a :class:`ServerUnavailable` naming
the server. Closing a stream closes its connection, which is how
such servers learn to stop generating (vLLM aborts the request, llama.cpp frees the slot).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from realtime.decoder import DecoderError

_RETRY_STATUS = frozenset({429, 502, 503, 504})


class ServerUnavailable(DecoderError):
    """The model server could not be reached, or stopped answering."""


@dataclass(frozen=True)
class ChatEndpoint:
    """Where the model is served and how patiently to talk to it."""

    base_url: str
    """The API root, as the OpenAI SDK takes it: ``http://host:8000/v1`` (``/v1`` is added to a bare host)."""
    model: str
    api_key: str | None = None
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 30.0
    """Longest wait for the next piece of a response (the first one includes the server's prefill)."""
    retries: int = 2
    backoff_s: float = 0.25

    @property
    def completions_url(self) -> str:
        root = self.base_url.rstrip("/")
        if urlsplit(root).path in ("", "/"):
            root += "/v1"
        return f"{root}/chat/completions"


class ChatClient:
    """Chat completion requests to one endpoint; one connection pool per event loop."""

    def __init__(self, endpoint: ChatEndpoint) -> None:
        self.endpoint = endpoint
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
            weakref.WeakKeyDictionary()
        )

    def body(self, messages: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
        """A request body for this endpoint's model."""
        return {"model": self.endpoint.model, "messages": messages, **options}

    async def warm(self, body: dict[str, Any]) -> None:
        """Send a one-token request so that the server caches the prompt's prefix (its answer is dropped)."""
        async with self._post({**body, "max_tokens": 1, "stream": False}) as response:
            await response.read()

    async def stream(self, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """The ``delta`` of each streamed choice; closing the iterator closes the connection."""
        url = self.endpoint.completions_url
        async with self._post({**body, "stream": True}) as response:
            try:
                while True:
                    try:
                        line = await asyncio.wait_for(response.content.readline(), self.endpoint.read_timeout_s)
                    except (TimeoutError, aiohttp.ClientError) as exc:
                        raise ServerUnavailable(f"the model server at {url} stopped answering: {exc or 'timed out'}") from exc
                    if not line:
                        return
                    data = line.decode().strip().removeprefix("data:").strip()
                    if not data or line.startswith(b":"):
                        continue
                    if data == "[DONE]":
                        return
                    event = json.loads(data)
                    if "error" in event:
                        raise DecoderError(f"the model server failed: {_message(event)}")
                    for choice in event.get("choices") or ():
                        if choice.get("delta"):
                            yield choice["delta"]
            finally:
                response.close()  # a stream given up early: drop the connection so the server stops

    async def close(self) -> None:
        """Close this loop's connection pool."""
        with contextlib.suppress(RuntimeError):
            session = self._sessions.pop(asyncio.get_running_loop(), None)
            if session is not None:
                await session.close()

    @contextlib.asynccontextmanager
    async def _post(self, body: dict[str, Any]) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST ``body``, retrying what failed before the server answered; the response is 200."""
        endpoint, url = self.endpoint, self.endpoint.completions_url
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        for attempt in range(endpoint.retries + 1):
            last = attempt == endpoint.retries
            try:
                response = await self._session().post(url, json=body, headers=headers)
            except aiohttp.SocketTimeoutError as exc:  # it took the request and never answered: asking again would wait again
                raise ServerUnavailable(f"the model server at {url} did not answer within {endpoint.read_timeout_s:g} s") from exc
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                if last:
                    raise ServerUnavailable(f"the model server at {url} is unreachable: {exc or 'timed out'}") from exc
            else:
                if response.status == 200:
                    try:
                        yield response
                    finally:
                        response.release()
                    return
                detail = await _error_text(response)
                if response.status not in _RETRY_STATUS:
                    raise DecoderError(f"the model server at {url} refused the request ({response.status}): {detail}")
                if last:
                    raise ServerUnavailable(f"the model server at {url} is unavailable ({response.status}): {detail}")
            await asyncio.sleep(endpoint.backoff_s * 2**attempt)

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            timeout = aiohttp.ClientTimeout(sock_connect=self.endpoint.connect_timeout_s, sock_read=self.endpoint.read_timeout_s)
            session = self._sessions[loop] = aiohttp.ClientSession(timeout=timeout)
        return session


def _message(event: dict[str, Any]) -> str:
    error = event.get("error")
    return str(error.get("message", error)) if isinstance(error, dict) else str(error)


async def _error_text(response: aiohttp.ClientResponse) -> str:
    text = (await response.text(errors="replace"))[:500]
    response.release()
    with contextlib.suppress(ValueError):
        return _message(json.loads(text))
    return text

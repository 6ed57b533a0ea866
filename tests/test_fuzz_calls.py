"""Property-based fuzzing of the WebRTC call endpoint, ``POST /v1/realtime/calls``, on a real server on loopback with
fake models: random content types and charsets, SDP offers with lines dropped, repeated or garbled, random bytes and
text, multipart forms with any fields. Whatever comes, the answer is a 4xx with a reason (or 201 for an offer that is
still good, then hung up), never a 5xx, and nothing is logged as an error (aiohttp logs an unhandled exception there).

Every ICE candidate stays on loopback: aioice sees no other interface, and no offer carries a candidate.
Deterministic in CI (``tests/conftest.py``); ``FUZZ_SCALE=N`` explores N times as many random examples.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import aioice
import pytest
from aiohttp import ClientSession, FormData
from aiortc import RTCPeerConnection
from hypothesis import event, given, settings
from hypothesis import strategies as st

from realtime.server import CALLS_PATH, RealtimeServer, ServerOptions
from tests.conftest import fuzz_examples
from tests.fakes import fake_models


@dataclass
class Served:
    loop: asyncio.AbstractEventLoop
    server: RealtimeServer
    http: ClientSession
    offer: str
    """A good offer (audio sendrecv and the events channel), as a browser sends it before gathering: no candidate."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}{CALLS_PATH}"

    def post(self, body: bytes | str | FormData, headers: dict[str, str]) -> tuple[int, str]:
        return self.loop.run_until_complete(self._post(body, headers))

    async def _post(self, body: bytes | str | FormData, headers: dict[str, str]) -> tuple[int, str]:
        async with self.http.post(self.url, data=body, headers=headers) as response:
            status, reason = response.status, await response.text()
            if status == 201:  # a good offer: the call is hung up at once
                async with self.http.post(f"http://127.0.0.1:{self.server.port}{response.headers['Location']}/hangup") as ended:
                    assert ended.status == 200
        return status, reason


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """A server on loopback (fake models, no page), an HTTP client and a good offer, for every example of the module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [])
        loop = asyncio.new_event_loop()
        options = ServerOptions(port=0, web_root=None, call_connect_timeout_s=1.0, max_sessions=4)
        server = loop.run_until_complete(RealtimeServer(fake_models()[0], options).start())
        http = loop.run_until_complete(_client())
        try:
            yield Served(loop, server, http, loop.run_until_complete(_offer()))
        finally:
            loop.run_until_complete(http.close())
            loop.run_until_complete(server.stop())
            loop.close()


async def _client() -> ClientSession:
    return ClientSession()


async def _offer() -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    pc.createDataChannel("oai-events")
    offer = (await pc.createOffer()).sdp
    await pc.close()
    return offer


# ---- strategies ---------------------------------------------------------------------------------------------------

content_types = st.sampled_from([
    "application/sdp", "application/sdp; charset=utf-8", "application/sdp; charset=latin-1", "application/sdp; charset=nonsense",
    "application/SDP", "multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=fuzz",
    "text/plain", "application/json", "application/x-www-form-urlencoded", "",
])
sdp_lines = st.sampled_from([
    "m=audio 9 UDP/TLS/RTP/SAVPF 0", "m=video 9 UDP/TLS/RTP/SAVPF 96", "m=audio 0 RTP/AVP", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "a=sendonly", "a=recvonly", "a=inactive", "a=rtpmap:111 opus/48000/2", "a=rtpmap:0 foo/0", "a=fingerprint:sha-256 00",
    "a=setup:actpass", "a=setup:nonsense", "a=ice-ufrag:", "a=ice-pwd:x", "a=mid:", "a=group:BUNDLE 0 1 2", "a=ssrc:x",
    "c=IN IP4 999.0.0.1", "v=1", "o=- 0 0 IN IP4", "s=", "t=0", "a=end-of-candidates", "a=extmap:x", "a=fmtp:111 x",
    "a=rtcp-fb:111", "a=sctp-port:abc", "a=max-message-size:-1",
])
"""SDP lines that are valid, wrong or contradictory (never an ICE candidate: no address leaves loopback)."""


@st.composite
def mangled_offers(draw: st.DrawFn, offer: str) -> str:
    """The good offer with lines dropped, repeated, replaced or inserted, and its line ends changed."""
    lines = offer.splitlines()
    for _ in range(draw(st.integers(0, 4))):
        index = draw(st.integers(0, len(lines)))
        how = draw(st.sampled_from(["drop", "insert", "replace", "repeat", "truncate"]))
        if how == "insert" or not lines:
            lines.insert(index, draw(sdp_lines | st.text(max_size=30)))
            continue
        index = min(index, len(lines) - 1)
        if how == "drop":
            del lines[index]
        elif how == "replace":
            lines[index] = draw(sdp_lines | st.text(max_size=30))
        elif how == "repeat":
            lines.insert(index, lines[index])
        else:
            lines[index] = lines[index][: draw(st.integers(0, len(lines[index])))]
    return draw(st.sampled_from(["\r\n", "\n", "\r"])).join(lines) + draw(st.sampled_from(["\r\n", ""]))


def bodies(offer: str) -> st.SearchStrategy[str | bytes]:
    return st.one_of(
        mangled_offers(offer), mangled_offers(offer).map(lambda sdp: sdp.encode("utf-16")), st.binary(max_size=200),
        st.text(max_size=200), st.just(""), st.just(offer.encode("latin-1", "replace") + b"\xff\xfe"),
    )


def json_texts() -> st.SearchStrategy[str]:
    values = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                          max_leaves=8)
    return st.one_of(values.map(json.dumps), st.text(max_size=40), st.just("[" * 50_000), st.just('{"instructions": NaN}'),
                     st.just(json.dumps({"instructions": "Be brief.", "audio": {"output": {"voice": []}}})))


@st.composite
def forms(draw: st.DrawFn, offer: str) -> FormData:
    """A multipart form: ``sdp`` and ``session`` fields (or other names), as plain fields or files, in any order."""
    form = FormData()
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["sdp", "session", "other", ""]))
        value = draw(bodies(offer)) if name != "session" else draw(json_texts())
        if isinstance(value, bytes) or draw(st.booleans()):  # a file
            data = value if isinstance(value, bytes) else value.encode()
            form.add_field(name, io.BytesIO(data), content_type=draw(content_types) or None, filename="offer.sdp")
        else:  # a plain field (the client cannot encode one in a charset it does not know)
            form.add_field(name, value, content_type=draw(content_types.filter(lambda kind: "nonsense" not in kind)) or None)
    return form


# ---- properties -----------------------------------------------------------------------------------------------------


def assert_answered(status: int, reason: str) -> None:
    """A 201 with an answer, or a 4xx that says why; never a 5xx."""
    event(f"HTTP {status}")
    assert status == 201 or 400 <= status < 500, (status, reason)
    assert reason.strip(), f"{status} with no reason"


@pytest.fixture
def errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    with caplog.at_level(logging.WARNING):
        yield caplog.records
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


@settings(max_examples=fuzz_examples(120))
@given(data=st.data())
def test_any_sdp_body_is_answered_without_a_server_error(served: Served, errors_logged: list[logging.LogRecord],
                                                          data: st.DataObject) -> None:
    """Any body under any content type: a 4xx with a reason, or a call; never a 5xx or an error in the log."""
    body = data.draw(bodies(served.offer))
    headers = {"Content-Type": data.draw(content_types)}
    assert_answered(*served.post(body, headers))
    assert not [r for r in errors_logged if r.levelno >= logging.ERROR]
    assert not served.server.connections or served.loop.run_until_complete(_settled(served))


@settings(max_examples=fuzz_examples(80))
@given(data=st.data())
def test_any_form_is_answered_without_a_server_error(served: Served, errors_logged: list[logging.LogRecord],
                                                      data: st.DataObject) -> None:
    """Any multipart form (fields and files of any name, content type and content): the same."""
    form = data.draw(forms(served.offer))
    assert_answered(*served.post(form, {}))
    assert not [r for r in errors_logged if r.levelno >= logging.ERROR]


def test_bad_session_settings_are_refused_with_the_call(served: Served) -> None:
    """A form whose session settings a ``session.update`` would refuse gets a 400 naming the field, and no call."""
    form = FormData()
    form.add_field("sdp", served.offer, content_type="application/sdp")
    form.add_field("session", json.dumps({"audio": {"output": {"voice": "nobody"}}}), content_type="application/json")
    status, reason = served.post(form, {})
    assert status == 400 and json.loads(reason)["error"]["param"] == "session.voice"
    assert not served.server.connections


def test_a_good_offer_still_gets_a_call(served: Served) -> None:
    """The fuzzing's baseline: the unmangled offer is answered (201), with and without a session form."""
    assert served.post(served.offer, {"Content-Type": "application/sdp"})[0] == 201
    form = FormData()
    form.add_field("sdp", served.offer, content_type="application/sdp")
    form.add_field("session", json.dumps({"instructions": "Be brief."}), content_type="application/json")
    assert served.post(form, {})[0] == 201


async def _settled(served: Served) -> bool:
    """Every call hung up has freed its session."""
    for _ in range(200):
        if not served.server.connections:
            return True
        await asyncio.sleep(0.01)
    return False

"""A fault-injecting HTTP proxy in front of an S3 endpoint (moto, SeaweedFS), for tests.

``FaultProxy(upstream_url, FaultPolicy(rate=0.2, seed=7))`` listens on 127.0.0.1 on a
port chosen at run time and forwards every request to the upstream endpoint. Our S3
client uses path-style requests for custom endpoints, so a test only points
``endpoint_url`` at ``proxy.url``. For each request a seeded random policy decides
whether to inject a fault (``rate``) and which one (``weights``):

============  =================================================  ========
kind          what the client sees                               applied?
============  =================================================  ========
error_500     500 InternalError (an S3 XML error body)           no
error_503     503 ServiceUnavailable                             no
slow_down     503 SlowDown                                       no
reset         a TCP reset before the request is forwarded        no
delay         the real answer, late by half to all of max_delay  yes
lost_reset    a TCP reset after the server answered              yes
lost_500      a 500 after the server answered                    yes
conflict_409  409 ConditionalRequestConflict (conditional PUTs)  no
============  =================================================  ========

The two ``lost_*`` kinds are the nasty ones: the write happened, the client saw an
error, and its retry meets its own write. The proxy counts requests, retries (botocore
numbers its attempts in the ``amz-sdk-request`` header) and each injected fault.

>>> with FaultProxy("http://127.0.0.1:5000", FaultPolicy(rate=0.2)) as proxy:  # doctest: +SKIP
...     uri = f"bucket+s3://bucket/root?endpoint_url={proxy.url}"
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import struct
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import NamedTuple
from urllib.parse import urlsplit

__all__ = ["DEFAULT_WEIGHTS", "FAULT_KINDS", "FaultPolicy", "FaultProxy", "ProxyStats"]

FAULT_KINDS = (
    "error_500",
    "error_503",
    "slow_down",
    "reset",
    "delay",
    "lost_reset",
    "lost_500",
    "conflict_409",
)
# conflict_409 is AWS's answer while another conditional write to the key is in flight;
# moto and SeaweedFS never send it, so it is off unless a test asks for it.
DEFAULT_WEIGHTS: Mapping[str, float] = {kind: 1.0 for kind in FAULT_KINDS} | {"conflict_409": 0.0}

_ERRORS = {
    "error_500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "error_503": (503, "ServiceUnavailable", "Service is unable to handle request."),
    "slow_down": (503, "SlowDown", "Please reduce your request rate."),
    "conflict_409": (
        409,
        "ConditionalRequestConflict",
        "A conflicting conditional operation is currently in progress against this resource.",
    ),
}
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "upgrade",
    "expect",
}


@dataclass(frozen=True)
class FaultPolicy:
    """Which requests get a fault, and which fault: ``rate`` of them, by ``weights``."""

    rate: float = 0.0
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    seed: int = 0
    max_delay: float = 0.2
    methods: frozenset[str] = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE"})
    #: Only a request's first attempt: every retry goes through (deterministic tests).
    first_attempt_only: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {self.rate}")


@dataclass
class ProxyStats:
    """What went through the proxy: requests, botocore retries, faults by kind."""

    requests: int = 0
    retries: int = 0
    faults: Counter[str] = field(default_factory=Counter)

    @property
    def total_faults(self) -> int:
        return sum(self.faults.values())

    def copy(self) -> ProxyStats:
        return ProxyStats(self.requests, self.retries, Counter(self.faults))

    def summary(self) -> str:
        kinds = ", ".join(
            f"{kind} {self.faults[kind]}" for kind in FAULT_KINDS if self.faults[kind]
        )
        return (
            f"{self.requests} requests, {self.retries} retries, "
            f"{self.total_faults} faults ({kinds or 'none'})"
        )


class _Decision(NamedTuple):
    kind: str | None
    delay: float = 0.0


def _attempt(headers: Message) -> int:
    # botocore sends "amz-sdk-request: attempt=2; max=8" on every request.
    for part in (headers.get("amz-sdk-request") or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "attempt" and value.isdigit():
            return int(value)
    return 1


class FaultProxy:
    """A threaded proxy on 127.0.0.1 that forwards to ``upstream`` and injects faults."""

    def __init__(self, upstream: str, policy: FaultPolicy | None = None) -> None:
        parsed = urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
            raise ValueError(f"upstream must be http://HOST:PORT, got {upstream!r}")
        self.upstream = (parsed.hostname, parsed.port)
        self._policy = policy or FaultPolicy()
        self._random = random.Random(self._policy.seed)
        self._lock = threading.Lock()
        self._stats = ProxyStats()
        self._server = _ProxyServer(("127.0.0.1", 0), _Handler, self)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fault-proxy",
            daemon=True,
        )
        self._thread.start()

    @property
    def policy(self) -> FaultPolicy:
        return self._policy

    def set_policy(self, policy: FaultPolicy) -> None:
        """Change the policy (and reseed) while the proxy runs: faults on, off, other kinds."""
        with self._lock:
            self._policy = policy
            self._random = random.Random(policy.seed)

    @property
    def stats(self) -> ProxyStats:
        with self._lock:
            return self._stats.copy()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _decide(self, method: str, headers: Message) -> _Decision:
        attempt = _attempt(headers)
        conditional = method == "PUT" and ("If-Match" in headers or "If-None-Match" in headers)
        with self._lock:
            self._stats.requests += 1
            if attempt > 1:
                self._stats.retries += 1
            policy = self._policy
            if method not in policy.methods or (policy.first_attempt_only and attempt > 1):
                return _Decision(None)
            if self._random.random() >= policy.rate:
                return _Decision(None)
            kinds = [
                (kind, weight)
                for kind, weight in policy.weights.items()
                if weight > 0 and (kind != "conflict_409" or conditional)
            ]
            if not kinds:
                return _Decision(None)
            kind = self._random.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
            self._stats.faults[kind] += 1
            delay = (
                self._random.uniform(policy.max_delay / 2, policy.max_delay)
                if kind == "delay"
                else 0.0
            )
            return _Decision(kind, delay)


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    # Connections the clients keep alive must not keep a closed proxy waiting.
    block_on_close = False

    def __init__(
        self, address: tuple[str, int], handler: type[_Handler], proxy: FaultProxy
    ) -> None:
        super().__init__(address, handler)
        self.proxy = proxy

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client went away mid-answer (a killed writer): nothing to report
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    timeout = 60
    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request would drown the test output

    def do_GET(self) -> None:
        self._relay()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _relay(self) -> None:
        decision = self.server.proxy._decide(self.command, self.headers)
        if decision.kind == "reset":
            self._reset()
            return
        body = self._read_body()
        if decision.kind in _ERRORS:
            self._answer_error(decision.kind)
            return
        try:
            status, reason, headers, payload = self._forward(body)
        except OSError:
            self._reset()  # the upstream is down: so is the endpoint, as the client sees it
            return
        if decision.kind == "lost_reset":
            self._reset()
            return
        if decision.kind == "lost_500":
            self._answer_error("error_500")
            return
        if decision.kind == "delay":
            time.sleep(decision.delay)
        self._answer(status, reason, headers, payload)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raw = bytearray()  # forwarded as it came, chunk framing and trailers included
            while True:
                line = self.rfile.readline()
                raw += line
                if int(line.split(b";")[0].strip() or b"0", 16) == 0:
                    while True:
                        trailer = self.rfile.readline()
                        raw += trailer
                        if trailer in (b"\r\n", b"\n", b""):
                            return bytes(raw)
                raw += self.rfile.read(int(line.split(b";")[0].strip(), 16) + 2)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        # A connection per request: a stale keep-alive connection to the upstream would
        # raise the very question this proxy asks on purpose (did the write happen?).
        connection = http.client.HTTPConnection(*self.server.proxy.upstream, timeout=120)
        try:
            connection.putrequest(
                self.command, self.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    connection.putheader(name, value)
            connection.endheaders(message_body=body or None)
            response = connection.getresponse()
            payload = response.read()
            return response.status, response.reason, response.getheaders(), payload
        finally:
            connection.close()

    def _answer(
        self, status: int, reason: str, headers: list[tuple[str, str]], payload: bytes
    ) -> None:
        self.send_response_only(status, reason)
        has_length = False
        for name, value in headers:
            lowered = name.lower()
            if lowered in _HOP_BY_HOP or lowered == "transfer-encoding":
                continue
            has_length = has_length or lowered == "content-length"
            self.send_header(name, value)
        if not has_length:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _answer_error(self, kind: str) -> None:
        status, code, message = _ERRORS[kind]
        request_id = uuid.uuid4().hex[:16].upper()
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<Resource>{self.path.split('?')[0]}</Resource>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-amz-request-id", request_id)
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        """Close with SO_LINGER 0: the client gets a TCP reset, not a polite end of stream."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # the file object holds a reference that would delay the close
            self.connection.close()

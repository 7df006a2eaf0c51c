"""A real S3 endpoint for the tests, and a proxy in front of it that can misbehave.

``MotoServer`` runs moto's standalone server (``moto_server`` from ``moto[server]``) in a
subprocess on a free loopback port; boto3 talks to it over real HTTP. moto gets pagination,
continuation tokens, conditional requests, multipart uploads and error codes right, but it
does not check signatures, checksums or presigned-URL expiry and it cannot misbehave on
purpose. ``FaultProxy`` is a small HTTP/1.1 proxy of the test suite's own that sits between
boto3 and moto, records every request that passes (method, path, query, headers, bytes sent
back) and, when told to, injects the faults real endpoints produce:

- ``slowdown``: 503 SlowDown with a ``Retry-After`` header;
- ``status``: any error status with an S3 error code (500 InternalError by default);
- ``truncated_no_token``: a ListObjectsV2 page that says it is truncated but carries no
  continuation token (botocore's paginator stops there silently);
- ``repeat_token``: a ListObjectsV2 page whose continuation token is one already used;
- ``empty_listing``: a well-formed, complete, empty ListObjectsV2 page;
- ``reset_mid_body``: status and headers, half the body, then a TCP reset;
- ``reset``: the connection reset before any response;
- ``delay``: the response held back for a while (for timeouts);
- ``stall_body``: status, headers and the first bytes of the body, then nothing for
  ``delay`` seconds (a server that stalls mid-body; the socket stays open), then a reset.

Faults are rules: what they match (method, a ListObjectsV2 call, a key, a predicate), how many
times they fire, and after how many matching requests they start. Nothing here is a mock: every
request that is not faulted is answered by moto.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ACCESS_KEY = "AKIDLIGHTBOXTEST0000"
SECRET_KEY = "lightbox-test-secret-key-0000000000000000"
REGION = "us-east-1"

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
               "trailers", "transfer-encoding", "upgrade"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def moto_server_binary() -> Path | None:
    """The ``moto_server`` script of the interpreter running the tests, if installed."""
    beside = Path(sys.executable).parent / "moto_server"
    if beside.exists():
        return beside
    found = shutil.which("moto_server")
    return Path(found) if found else None


class MotoServer:
    """moto's standalone S3 server in a subprocess on a free loopback port.

    ``max_keys`` sets ``MOTO_S3_DEFAULT_MAX_KEYS``, the page size moto uses when a client does
    not ask for one, so a few dozen objects make many pages.
    """

    def __init__(self, max_keys: int | None = None) -> None:
        self.max_keys = max_keys
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> MotoServer:
        binary = moto_server_binary()
        if binary is None:
            raise RuntimeError("moto_server is not installed (pip install 'moto[server]')")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        if self.max_keys is not None:
            env["MOTO_S3_DEFAULT_MAX_KEYS"] = str(self.max_keys)
        for _ in range(5):  # the port can be taken between choosing and binding it
            self.port = free_port()
            log = Path(f"/tmp/lb-moto-{self.port}.log")
            self.log_path = log
            with open(log, "wb") as out:
                self.proc = subprocess.Popen(
                    [str(binary), "-H", "127.0.0.1", "-p", str(self.port)],
                    stdout=out, stderr=out, env=env)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if _http_ok(self.endpoint):
                    return self
                time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"moto_server did not start (log: {self.log_path})")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.log_path is not None:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def reset(self) -> None:
        """Forget every bucket and object (moto's own reset endpoint)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", "/moto-api/reset")
            conn.getresponse().read()
        finally:
            conn.close()


def _http_ok(endpoint: str) -> bool:
    parsed = urllib.parse.urlsplit(endpoint)
    try:
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=1)
        conn.request("GET", "/moto-api/")
        conn.getresponse().read()
        conn.close()
        return True
    except OSError:
        return False


@dataclass
class Request:
    """One request that reached the proxy, and what the proxy did with it."""

    method: str
    path: str  # without the query string, percent-decoded
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body_bytes: int = 0
    status: int = 0
    sent_bytes: int = 0  # response body bytes written back to the client
    fault: str | None = None

    @property
    def bucket(self) -> str:
        return self.path.lstrip("/").split("/", 1)[0]

    @property
    def key(self) -> str | None:
        parts = self.path.lstrip("/").split("/", 1)
        return parts[1] if len(parts) == 2 and parts[1] else None

    @property
    def is_list(self) -> bool:
        """A ListObjectsV2 call."""
        return self.method == "GET" and self.key is None and self.query.get("list-type") == "2"


@dataclass
class Rule:
    """A fault and the requests it applies to."""

    fault: str
    match: Callable[[Request], bool]
    times: int | None = 1  # None: every matching request
    after: int = 0  # let this many matching requests through first
    status: int = 500
    code: str = "InternalError"
    retry_after: float | None = None
    delay: float = 0.0
    seen: int = 0
    fired: int = 0

    def take(self, req: Request) -> bool:
        if not self.match(req):
            return False
        self.seen += 1
        if self.seen <= self.after:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.fired += 1
        return True


@dataclass
class FaultProxy:
    """An HTTP/1.1 proxy to ``upstream`` that records requests and injects faults."""

    upstream: str
    requests: list[Request] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _tokens: list[str] = field(default_factory=list)  # continuation tokens handed out

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_ProxyHandler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- faults -------------------------------------------------------------------------
    def inject(self, fault: str, *, times: int | None = 1, after: int = 0,
               method: str | None = None, list_objects: bool | None = None,
               key: str | None = None, ranged: bool | None = None,
               match: Callable[[Request], bool] | None = None, status: int = 500,
               code: str = "InternalError", retry_after: float | None = None,
               delay: float = 0.0) -> Rule:
        """Add a fault for the requests that match every criterion given.

        ``key``: the object key contains this text; ``ranged``: the request has (or has not)
        a Range header; ``match``: any predicate on the ``Request``.
        """
        known = {"slowdown", "status", "truncated_no_token", "repeat_token", "empty_listing",
                 "reset_mid_body", "reset", "delay", "stall_body"}
        if fault not in known:
            raise ValueError(f"unknown fault {fault!r}: one of {sorted(known)}")

        def matches(req: Request) -> bool:
            if method is not None and req.method != method:
                return False
            if list_objects is not None and req.is_list != list_objects:
                return False
            if key is not None and (req.key is None or key not in req.key):
                return False
            if ranged is not None and ("range" in req.headers) != ranged:
                return False
            return match is None or match(req)

        if fault == "slowdown":
            status, code = 503, "SlowDown"
        rule = Rule(fault, matches, times, after, status, code, retry_after, delay)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Drop every fault rule and forget the recorded requests."""
        with self._lock:
            self.rules.clear()
            self.requests.clear()

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def log(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def count(self, pred: Callable[[Request], bool] | None = None) -> int:
        return sum(1 for r in self.log() if pred is None or pred(r))

    def _rule_for(self, req: Request) -> Rule | None:
        with self._lock:
            self.requests.append(req)
            for rule in self.rules:
                if rule.take(req):
                    req.fault = rule.fault
                    return rule
        return None


class _ProxyHandler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the tests read FaultProxy.requests instead

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    # -- the work ----------------------------------------------------------------------
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        query = dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = self._read_body()
        req = Request(self.command, urllib.parse.unquote(raw_path), query, headers, len(body))
        rule = self.owner._rule_for(req)
        if rule is not None and rule.fault == "reset":
            req.status = 0
            self._reset()
            return
        if rule is not None and rule.fault in ("slowdown", "status"):
            self._error(req, rule)
            return
        if rule is not None and rule.fault == "empty_listing":
            self._send(req, 200, {"Content-Type": "application/xml"},
                       _empty_listing(req).encode())
            return
        if rule is not None and rule.fault == "delay":
            time.sleep(rule.delay)
        try:
            status, resp_headers, resp_body = self._forward(req, raw_path, raw_query, body)
        except OSError:
            self._reset()
            return
        if req.is_list and status == 200:
            resp_body = self._rewrite_listing(req, rule, resp_body)
        if rule is not None and rule.fault == "reset_mid_body":
            self._send_half_then_reset(req, status, resp_headers, resp_body)
            return
        if rule is not None and rule.fault == "stall_body":
            self._send_half_then_reset(req, status, resp_headers, resp_body, stall=rule.delay)
            return
        self._send(req, status, resp_headers, resp_body)

    def _forward(self, req: Request, raw_path: str, raw_query: str,
                 body: bytes) -> tuple[int, dict[str, str], bytes]:
        parsed = urllib.parse.urlsplit(self.owner.upstream)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        try:
            out_headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"}
            if body or self.command in ("PUT", "POST"):
                out_headers["Content-Length"] = str(len(body))
            target = raw_path + ("?" + raw_query if raw_query else "")
            conn.request(self.command, target, body=body or None, headers=out_headers)
            resp = conn.getresponse()
            data = resp.read()
            headers = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP}
            return resp.status, headers, data
        finally:
            conn.close()

    def _rewrite_listing(self, req: Request, rule: Rule | None, body: bytes) -> bytes:
        text = body.decode("utf-8", "replace")
        token_re = re.compile(r"<NextContinuationToken>(.*?)</NextContinuationToken>", re.S)
        found = token_re.search(text)
        if rule is not None and rule.fault == "truncated_no_token":
            text = token_re.sub("", text)
            text = re.sub(r"<IsTruncated>\w+</IsTruncated>", "<IsTruncated>true</IsTruncated>",
                          text)
        elif rule is not None and rule.fault == "repeat_token":
            again = req.query.get("continuation-token") or (
                self.owner._tokens[0] if self.owner._tokens else None)
            if again is None and found is not None:
                again = found.group(1)
            if again is not None:
                replacement = f"<NextContinuationToken>{again}</NextContinuationToken>"
                if found is not None:
                    text = token_re.sub(replacement, text)
                else:
                    text = text.replace("</ListBucketResult>",
                                        replacement + "</ListBucketResult>")
                text = re.sub(r"<IsTruncated>\w+</IsTruncated>",
                              "<IsTruncated>true</IsTruncated>", text)
        elif found is not None:
            with self.owner._lock:
                self.owner._tokens.append(found.group(1))
        return text.encode("utf-8")

    def _error(self, req: Request, rule: Rule) -> None:
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{rule.code}</Code>'
                f"<Message>injected by the test proxy</Message>"
                f"<RequestId>{uuid.uuid4().hex}</RequestId></Error>").encode()
        headers = {"Content-Type": "application/xml"}
        if rule.retry_after is not None:
            headers["Retry-After"] = f"{rule.retry_after:g}"
        self._send(req, rule.status, headers, b"" if self.command == "HEAD" else body)

    def _send(self, req: Request, status: int, headers: dict[str, str], body: bytes) -> None:
        req.status = status
        self.send_response_only(status)
        for k, v in headers.items():
            if k.lower() in ("content-length", "date", "server"):
                continue
            self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", headers.get("Content-Length",
                                                           headers.get("content-length", "0")))
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        req.sent_bytes = len(body)  # before writing: the client may look as soon as it reads
        self.wfile.write(body)
        self.wfile.flush()

    def _send_half_then_reset(self, req: Request, status: int, headers: dict[str, str],
                              body: bytes, stall: float = 0.0) -> None:
        req.status = status
        self.send_response_only(status)
        for k, v in headers.items():
            if k.lower() not in ("content-length", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        half = body[: max(1, len(body) // 2)]
        req.sent_bytes = len(half)
        self.wfile.write(half)
        self.wfile.flush()
        if stall:
            # Hold the connection open sending nothing; end early if the client hangs up.
            self.connection.settimeout(stall)
            with contextlib.suppress(OSError):
                self.connection.recv(1)
        self._reset()

    def _reset(self) -> None:
        """Close the connection with a TCP RST, as a dropped link looks to the client."""
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.connection.close()
        self.close_connection = True


def _empty_listing(req: Request) -> str:
    prefix = req.query.get("prefix", "")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{req.bucket}</Name><Prefix>{prefix}</Prefix><KeyCount>0</KeyCount>"
            "<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>")


@dataclass
class S3Env:
    """What a test gets: the proxy's endpoint (for lightbox) and a direct boto3 client."""

    server: MotoServer
    proxy: FaultProxy
    buckets: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        """Where lightbox should talk to: through the proxy."""
        return self.proxy.endpoint

    def client(self, through_proxy: bool = False) -> Any:
        """A boto3 client for setting up and checking buckets (direct to moto by default)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.proxy.endpoint if through_proxy else self.server.endpoint,
            region_name=REGION, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"},
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required",
                          retries={"mode": "standard", "total_max_attempts": 1}))

    def make_bucket(self, name: str | None = None) -> str:
        name = name or f"lb-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)
        return name

    def put(self, bucket: str, key: str, data: bytes | Path,
            content_type: str = "application/octet-stream") -> None:
        body = data.read_bytes() if isinstance(data, Path) else data
        self.client().put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def delete(self, bucket: str, key: str) -> None:
        self.client().delete_object(Bucket=bucket, Key=key)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        out: list[str] = []
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            out.extend(o["Key"] for o in page.get("Contents", []))
        return out

    def get(self, bucket: str, key: str) -> bytes:
        data: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return data

    def cleanup(self) -> None:
        """Empty and delete the buckets this test made (moto keeps state across tests)."""
        client = self.client()
        for bucket in self.buckets:
            with contextlib.suppress(Exception):
                for key in self.keys(bucket):
                    client.delete_object(Bucket=bucket, Key=key)
                uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
                for up in uploads:
                    client.abort_multipart_upload(Bucket=bucket, Key=up["Key"],
                                                  UploadId=up["UploadId"])
                client.delete_bucket(Bucket=bucket)
        self.buckets.clear()


@contextlib.contextmanager
def s3_env(server: MotoServer) -> Iterator[S3Env]:
    proxy = FaultProxy(server.endpoint).start()
    env = S3Env(server, proxy)
    try:
        yield env
    finally:
        env.cleanup()
        proxy.stop()

"""The ``s3`` source kind: a bucket (and prefix) on AWS or any S3-compatible endpoint.

- **Listing you can prove complete.** Our own ListObjectsV2 loop, not botocore's paginator
  (which ends silently on a page that says "truncated" without a continuation token, and
  catches only a token repeated immediately): truncated without a token, a token seen
  before, an error on any page after the first, or more pages than the cap make the listing
  incomplete, with a reason. Keys come URL-encoded (``EncodingType=url``) and are decoded
  here, so odd characters survive and a key that is not UTF-8 is skipped with a note.
  Zero-byte ``prefix/`` directory markers are skipped.
- **Not every endpoint is AWS.** boto3 ≥ 1.36 computes CRC checksums for every upload and
  asks for checksum validation on every download; Backblaze B2 and other S3-compatible
  stores reject those headers. For an endpoint that is not AWS the client is configured
  ``request_checksum_calculation = response_checksum_validation = "when_required"``
  (``QUIRKS`` holds what differs per provider).
- **Retries of our own**, with exponential backoff and full jitter, honouring
  ``Retry-After``: on 503 SlowDown, 500, throttling and connection resets. botocore's own
  retries are off (one attempt), because they ignore ``Retry-After``.
- **Bounded transfers**: every read has a socket read timeout (``read_timeout``) and the
  whole transfer of one object, its retries included, an overall budget
  (``object_timeout`` + size / ``MIN_RATE``): a watchdog shuts the connection when it is
  spent, so a server that stalls or trickles a body cannot hold a thread for ever; the
  read then fails with reason ``timeout``.
- **Reads are of the listed object only**: every GET carries ``If-Match`` with the listed
  ETag, so an object overwritten since it was listed is refused as ``changed``.
- **Errors a user can act on**: ``S3Error.reason`` is one of ``REASONS`` and its message
  says what to fix, never the secret.

All of it is blocking (boto3): callers use a thread or a worker process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import http.client
import os
import random
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO, TypeVar

from lightbox.daemon.kinds.base import (
    PAGE_CAP,
    PAGE_ERROR,
    REPEATED_TOKEN,
    TRUNCATED_NO_TOKEN,
    Entry,
    Listing,
)
from lightbox.daemon.media.confine import CHANGED, Refused

T = TypeVar("T")

PAGE_SIZE = 1000
MAX_PAGES = 1_000_000           # a billion objects: past that the loop is surely stuck
MAX_ATTEMPTS = 6
BACKOFF_BASE = 0.25
BACKOFF_CAP = 20.0
RETRY_AFTER_CAP = 60.0
CHUNK = 1 << 20
# The overall budget of one object's transfer: ``object_timeout`` plus its size at this
# (slow) rate, so a 4 GB original over a slow link is not cut while a stalled body is.
MIN_RATE = 256 << 10
PRESIGN_MAX = 7 * 24 * 3600     # SigV4's own limit
CLOCK_SKEW_LIMIT = 15 * 60      # S3 refuses requests signed further off than this

# Reasons an S3 operation failed (``S3Error.reason``), stable for clients.
ENDPOINT, TLS, CLOCK, CREDENTIALS, BUCKET = "endpoint", "tls", "clock_skew", "credentials", \
    "bucket"
LIST_DENIED, GET_DENIED, THROTTLED, SERVER, GONE = "list_denied", "get_denied", "throttled", \
    "server_error", "gone"
TIMEOUT = "timeout"
REASONS = (ENDPOINT, TLS, CLOCK, CREDENTIALS, BUCKET, LIST_DENIED, GET_DENIED, THROTTLED,
           SERVER, GONE, CHANGED, TIMEOUT)
# Reads that failed for the object's transfer itself, after every retry: a lasting error of
# the photo once they keep failing (``library.failures``), unlike a bucket-wide cause.
TRANSFER_REASONS = (SERVER, THROTTLED, TIMEOUT)

_RETRY_CODES = {"SlowDown", "InternalError", "ServiceUnavailable", "Throttling",
                "ThrottlingException", "TooManyRequests", "RequestTimeout",
                "RequestLimitExceeded", "503", "500", "502", "504"}
_CRED_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
               "ExpiredToken", "InvalidSecurity", "AuthorizationHeaderMalformed",
               "InvalidClientTokenId", "Unauthorized"}


@dataclass(frozen=True)
class Quirk:
    """What one provider does differently from AWS."""

    provider: str
    aws: bool = False               # sends and validates the new default checksums
    addressing: str = "path"        # default addressing style
    presign_max: int = PRESIGN_MAX


# Matched on the end of the endpoint's host name; the first match wins.
QUIRKS: tuple[tuple[str, Quirk], ...] = (
    ("amazonaws.com", Quirk("aws", aws=True, addressing="virtual")),
    ("amazonaws.com.cn", Quirk("aws-china", aws=True, addressing="virtual")),
    # B2 rejects x-amz-checksum-* / x-amz-sdk-checksum-algorithm (boto3 >= 1.36 defaults).
    ("backblazeb2.com", Quirk("backblaze-b2", addressing="virtual")),
    ("r2.cloudflarestorage.com", Quirk("cloudflare-r2", addressing="path")),
    ("storage.googleapis.com", Quirk("google-cloud-storage", addressing="path")),
    ("wasabisys.com", Quirk("wasabi", addressing="virtual")),
    ("digitaloceanspaces.com", Quirk("digitalocean-spaces", addressing="virtual")),
    ("linodeobjects.com", Quirk("linode", addressing="virtual")),
)
GENERIC = Quirk("s3-compatible")    # MinIO, Ceph RGW, Garage, moto...


def quirk_for(endpoint: str | None) -> Quirk:
    if not endpoint:
        return QUIRKS[0][1]
    host = (urllib.parse.urlsplit(endpoint).hostname or "").lower()
    for suffix, quirk in QUIRKS:
        if host == suffix or host.endswith("." + suffix):
            return quirk
    return GENERIC


@dataclass(frozen=True)
class S3Config:
    """Everything needed to reach a bucket; picklable, so workers get it in a locator.

    The secret is part of it (a worker must sign requests) but never of its ``repr``.
    """

    bucket: str
    region: str = "us-east-1"
    endpoint: str | None = None          # None: AWS
    prefix: str = ""                     # "" or ending in "/"
    addressing_style: str = "auto"       # auto | path | virtual
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    profile: str | None = None           # a profile of the standard AWS files instead
    connect_timeout: float = 10.0
    read_timeout: float = 60.0           # one socket read (headers, or a piece of a body)
    object_timeout: float = 300.0        # one object's whole transfer, plus size / MIN_RATE
    attempts: int = MAX_ATTEMPTS         # per read, retries included

    def budget(self, size: int | None) -> float:
        """Seconds the whole transfer of an object of ``size`` bytes may take."""
        return self.object_timeout + (size or 0) / MIN_RATE

    @staticmethod
    def norm_prefix(prefix: str | None) -> str:
        p = (prefix or "").lstrip("/")
        return p if not p or p.endswith("/") else p + "/"

    @property
    def quirk(self) -> Quirk:
        return quirk_for(self.endpoint)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


_ERRNO = {ENDPOINT: errno.EHOSTUNREACH, TLS: errno.EPROTO, CLOCK: errno.EACCES,
          CREDENTIALS: errno.EACCES, BUCKET: errno.ENOENT, LIST_DENIED: errno.EACCES,
          GET_DENIED: errno.EACCES, THROTTLED: errno.EAGAIN, SERVER: errno.EIO,
          GONE: errno.ENOENT, TIMEOUT: errno.ETIMEDOUT}


class S3Error(OSError):
    """An S3 operation failed for a reason a user can act on (``reason`` in ``REASONS``).

    An OSError with a fitting errno, so that ``library.failures`` treats a bucket's faults
    like a disk's: permission denied, gone, I/O error are the machine's (retried with
    backoff), never a lasting error of the photo.
    """

    def __init__(self, reason: str, message: str, status: int | None = None) -> None:
        super().__init__(_ERRNO.get(reason, errno.EIO), message)
        self.reason = reason
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type[S3Error], tuple[str, str, int | None]]:
        return (S3Error, (self.reason, str(self), self.status))


# -- clients -----------------------------------------------------------------------------
_clients: dict[S3Config, Any] = {}
_clients_lock = threading.Lock()


def client_config(cfg: S3Config) -> Any:
    """The botocore Config for a source: one attempt (we retry), checksums per quirk."""
    from botocore.config import Config

    quirk = cfg.quirk
    style = quirk.addressing if cfg.addressing_style == "auto" else cfg.addressing_style
    kwargs: dict[str, Any] = {
        "s3": {"addressing_style": style},
        "signature_version": "s3v4",
        "retries": {"mode": "standard", "total_max_attempts": 1},
        "connect_timeout": cfg.connect_timeout,
        "read_timeout": cfg.read_timeout,
        "max_pool_connections": 16,
    }
    if not quirk.aws:
        kwargs["request_checksum_calculation"] = "when_required"
        kwargs["response_checksum_validation"] = "when_required"
    return Config(**kwargs)


def parse_timestamp(value: str) -> dt.datetime:
    """A response's timestamp, as botocore's parser gives it but ~50x cheaper for the ISO
    8601 form ListObjectsV2 uses for every key's LastModified (``datetime.fromisoformat``
    instead of dateutil, which was two thirds of the client's CPU for a page of 1000 keys);
    anything else (HTTP dates of headers) goes to botocore's own parser."""
    try:
        when = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        from botocore.utils import parse_timestamp as slow

        parsed: dt.datetime = slow(value)
        return parsed
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def client(cfg: S3Config) -> Any:
    """A boto3 client for ``cfg``, one per process and config (boto3 clients are
    thread-safe; making one costs ~50 ms). Its responses' timestamps are parsed by
    ``parse_timestamp``."""
    with _clients_lock:
        found = _clients.get(cfg)
        if found is not None:
            return found
        import boto3
        import botocore.session

        core = botocore.session.Session(profile=cfg.profile)
        core.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=parse_timestamp)
        session = boto3.session.Session(botocore_session=core)
        made = session.client(
            "s3", endpoint_url=cfg.endpoint or None, region_name=cfg.region or None,
            aws_access_key_id=None if cfg.profile else cfg.access_key_id,
            aws_secret_access_key=None if cfg.profile else cfg.secret_access_key,
            config=client_config(cfg))
        _clients[cfg] = made
        return made


def forget_clients() -> None:
    with _clients_lock:
        _clients.clear()


# -- errors and retries ------------------------------------------------------------------
def _status_code(exc: Any) -> tuple[int | None, str]:
    resp = getattr(exc, "response", None) or {}
    status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(resp.get("Error", {}).get("Code") or "")
    return status, code


def retry_after(exc: Any) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``), capped; None if it did not."""
    resp = getattr(exc, "response", None) or {}
    value = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, min(RETRY_AFTER_CAP, float(value)))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, min(RETRY_AFTER_CAP, when.timestamp() - time.time()))


def backoff(attempt: int) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^attempt)]."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * (2 ** attempt)))


def retryable(exc: BaseException) -> bool:
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        IncompleteReadError,
        ReadTimeoutError,
        ResponseStreamingError,
    )

    if isinstance(exc, ClientError):
        status, code = _status_code(exc)
        return code in _RETRY_CODES or (status is not None and status >= 500)
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return False   # nobody there: say so at once rather than after a minute
    return isinstance(exc, ConnectionClosedError | ReadTimeoutError | ResponseStreamingError
                      | IncompleteReadError | ConnectionError | http.client.HTTPException)


def call(fn: Callable[[], T], *, attempts: int = MAX_ATTEMPTS,
         sleep: Callable[[float], None] = time.sleep) -> T:
    """``fn()`` with retries on what a retry can fix; the last error propagates."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not retryable(exc):
                raise
            wait = retry_after(exc)
            sleep(backoff(attempt) if wait is None else wait)
    raise AssertionError("unreachable")


def explain(exc: BaseException, cfg: S3Config, doing: str = "list") -> S3Error:
    """Any boto/botocore failure as an ``S3Error`` saying what to fix."""
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ProfileNotFound,
        SSLError,
    )

    where = cfg.endpoint or "AWS S3"
    if isinstance(exc, S3Error):
        return exc
    if isinstance(exc, SSLError | ssl.SSLError):
        return S3Error(TLS, f"TLS with {where} failed ({exc}); check the endpoint's "
                            "certificate or use the right scheme (http/https)")
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return S3Error(ENDPOINT, f"cannot reach {where}; check the endpoint URL and the "
                                 "network")
    if isinstance(exc, NoCredentialsError | ProfileNotFound):
        return S3Error(CREDENTIALS, f"no credentials for bucket {cfg.bucket}: {exc}")
    if isinstance(exc, ClientError):
        status, code = _status_code(exc)
        if code == "RequestTimeTooSkewed":
            return S3Error(CLOCK, "the server refused the request because this machine's "
                                  "clock is off by more than 15 minutes; fix the time (NTP)",
                           status)
        if code in _CRED_CODES:
            return S3Error(CREDENTIALS, f"{where} refused the credentials ({code}); check "
                                        "the access key id and secret", status)
        if code == "NoSuchBucket" or (doing == "bucket" and status == 404):
            return S3Error(BUCKET, f"bucket {cfg.bucket!r} does not exist at {where} (or is "
                                   "in another region)", status)
        if code in ("NoSuchKey", "404") or status == 404:
            return S3Error(GONE, "the object is not there any more", status)
        if code == "PreconditionFailed" or status == 412:
            return S3Error(CHANGED, "the object changed since it was listed", status)
        if code in ("AccessDenied", "AllAccessDisabled", "403") or status == 403:
            if doing == "get":
                return S3Error(GET_DENIED, f"permission denied reading objects of bucket "
                                           f"{cfg.bucket!r}; the key needs s3:GetObject",
                               status)
            return S3Error(LIST_DENIED, f"permission denied listing bucket {cfg.bucket!r}; "
                                        "the key needs s3:ListBucket", status)
        if code in _RETRY_CODES and status in (429, 503):
            return S3Error(THROTTLED, f"{where} kept asking us to slow down ({code})", status)
        return S3Error(SERVER, f"{where} failed ({status} {code})", status)
    return S3Error(SERVER, f"talking to {where} failed ({type(exc).__name__}: {exc})")


# -- the kind ----------------------------------------------------------------------------
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _mtime_ns(when: dt.datetime) -> int:
    """LastModified in ns since the epoch (exact: timedelta arithmetic, no float; a naive
    value is UTC). Once per listed object: the cheap way."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (when - _EPOCH) // _MICROSECOND * 1000


def _decode_key(raw: str) -> str | None:
    """A key as S3 sent it with EncodingType=url (``+`` is a space, as botocore reads it);
    None when its bytes are not UTF-8."""
    data = urllib.parse.unquote_to_bytes(raw.replace("+", " "))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _plain_rel(rel: str) -> bool:
    return bool(rel) and not rel.startswith("/") and "\0" not in rel and all(
        p not in ("", ".", "..") for p in rel.split("/"))


@dataclass(frozen=True)
class S3Object:
    """The locator of one object: where it is and the fingerprint it was listed with."""

    config: S3Config
    key: str
    size: int | None = None
    mtime_ns: int | None = None
    etag: str | None = None
    kind: str = "s3"

    @property
    def path(self) -> str:
        """For messages and logs."""
        return f"s3://{self.config.bucket}/{self.key}"

    @property
    def name(self) -> str:
        return self.key.rpartition("/")[2]


class S3Kind:
    kind = "s3"

    def __init__(self, cfg: S3Config, *, page_size: int = PAGE_SIZE,
                 max_pages: int = MAX_PAGES) -> None:
        self.cfg = cfg
        self.page_size = page_size
        self.max_pages = max_pages

    @property
    def client(self) -> Any:
        return client(self.cfg)

    def list_prefix(self, prefix: str = "",
                    on_page: Callable[[int, int], None] | None = None) -> Listing:
        """Every object below the source's prefix + ``prefix``, with a completeness
        verdict. An error on the first page raises ``S3Error`` (nothing was listed).
        ``on_page(pages, entries)`` after each page (from this thread)."""
        full = self.cfg.prefix + prefix
        out = Listing()
        token: str | None = None
        seen: set[str] = set()
        while True:
            if out.pages >= self.max_pages:
                out.cut(PAGE_CAP, f"more than {self.max_pages} pages; stopped listing")
                break
            params: dict[str, Any] = {"Bucket": self.cfg.bucket, "Prefix": full,
                                      "EncodingType": "url", "MaxKeys": self.page_size}
            if token is not None:
                params["ContinuationToken"] = token
            try:
                page = call(lambda p=params: self.client.list_objects_v2(**p))  # type: ignore[misc]
            except Exception as exc:
                err = explain(exc, self.cfg, "list")
                if out.pages == 0:
                    raise err from None
                out.cut(PAGE_ERROR, f"page {out.pages + 1} of the listing failed: {err}")
                break
            out.pages += 1
            for obj in page.get("Contents", ()):
                self._add(out, obj, len(self.cfg.prefix))
            if on_page is not None:
                on_page(out.pages, len(out.entries))
            if not page.get("IsTruncated"):
                break
            nxt = page.get("NextContinuationToken")
            if not nxt:
                out.cut(TRUNCATED_NO_TOKEN, f"page {out.pages} says the listing goes on but "
                                            "gives no continuation token")
                break
            if nxt in seen or nxt == token:
                out.cut(REPEATED_TOKEN, f"page {out.pages} repeats a continuation token "
                                        "already used (the listing would loop)")
                break
            seen.add(nxt)
            token = nxt
        return out

    def _add(self, out: Listing, obj: dict[str, Any], cut: int) -> None:
        key = _decode_key(obj["Key"])
        if key is None:
            out.skipped.append(f"{obj['Key']}: key is not valid UTF-8")
            return
        size = int(obj.get("Size") or 0)
        if key.endswith("/"):
            if size:
                out.skipped.append(f"{key}: a non-empty object named like a folder")
            return      # a zero-byte directory marker
        rel = key[cut:]
        if not _plain_rel(rel):
            out.skipped.append(f"{key}: empty, '.' or '..' path segments cannot be a folder")
            return
        etag = str(obj.get("ETag") or "").strip('"') or None
        out.entries.append(Entry(rel, size, _mtime_ns(obj["LastModified"]), etag))

    def key_of(self, rel: str) -> str:
        return self.cfg.prefix + rel

    def stat(self, rel: str) -> Entry | None:
        from botocore.exceptions import ClientError

        try:
            head = call(lambda: self.client.head_object(Bucket=self.cfg.bucket,
                                                        Key=self.key_of(rel)))
        except ClientError as exc:
            if _status_code(exc)[0] == 404:
                return None
            raise explain(exc, self.cfg, "get") from None
        except Exception as exc:
            raise explain(exc, self.cfg, "get") from None
        return Entry(rel, int(head["ContentLength"]), _mtime_ns(head["LastModified"]),
                     str(head.get("ETag") or "").strip('"') or None)

    def fingerprint(self, entry: Entry) -> tuple[Any, ...]:
        return (entry.size, entry.mtime_ns, entry.tag)

    def locator(self, rel: str, entry: Entry) -> S3Object:
        return S3Object(self.cfg, self.key_of(rel), entry.size, entry.mtime_ns, entry.tag)

    def read_range(self, loc: S3Object, offset: int, length: int) -> bytes:
        return read_range(loc, offset, length)


def head(loc: S3Object) -> Entry | None:
    """The object as it is now (HEAD), or None when it is gone."""
    from botocore.exceptions import ClientError

    try:
        got = call(lambda: client(loc.config).head_object(Bucket=loc.config.bucket,
                                                          Key=loc.key))
    except ClientError as exc:
        if _status_code(exc)[0] == 404:
            return None
        raise explain(exc, loc.config, "get") from None
    except Exception as exc:
        raise explain(exc, loc.config, "get") from None
    return Entry(loc.key, int(got["ContentLength"]), _mtime_ns(got["LastModified"]),
                 str(got.get("ETag") or "").strip('"') or None)


def _get(loc: S3Object, rng: str | None) -> Any:
    params: dict[str, Any] = {"Bucket": loc.config.bucket, "Key": loc.key}
    if rng is not None:
        params["Range"] = rng
    if loc.etag:
        params["IfMatch"] = f'"{loc.etag}"'
    return client(loc.config).get_object(**params)


def _refuse_changed(err: S3Error, loc: S3Object) -> None:
    if err.reason == CHANGED:
        raise Refused(CHANGED, f"{loc.path} changed since it was listed (ETag is not "
                               f"{loc.etag})") from None


class Watchdog:
    """The overall budget of one object's transfer, across its retries.

    ``watch(body)`` names the response being read; when the budget is spent a timer thread
    shuts that response's socket down, which wakes the read blocked on it (a read timeout
    alone does not end a body trickled a byte at a time). ``check()`` raises once spent.
    """

    def __init__(self, loc: S3Object, budget: float) -> None:
        self.loc = loc
        self.budget = budget
        self.deadline = time.monotonic() + budget
        self.expired = False
        self._lock = threading.Lock()
        self._body: Any = None
        self._timer = threading.Timer(budget, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> Watchdog:
        with _watching_lock:
            _watching.add(self)
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with _watching_lock:
            _watching.discard(self)

    def fire(self) -> None:
        """Spend the budget now (the daemon is stopping): the read in progress ends."""
        self._timer.cancel()
        self._fire()

    def watch(self, body: Any) -> None:
        with self._lock:
            self._body = body
            if self.expired:
                _shut(body)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def _fire(self) -> None:
        with self._lock:
            self.expired = True
            if self._body is not None:
                _shut(self._body)

    def error(self, done: int) -> S3Error:
        return S3Error(TIMEOUT, f"reading {self.loc.path} did not finish within "
                                f"{self.budget:.0f} s ({done} of {self.loc.size} bytes came); "
                                "the endpoint stalls or is very slow", None)

    def check(self, done: int) -> None:
        if self.expired or self.left() <= 0:
            raise self.error(done)


_watching: set[Watchdog] = set()
_watching_lock = threading.Lock()


def abort_transfers() -> None:
    """End every object transfer of this process now (each fails with ``timeout``): so a
    stopping daemon does not wait for a stalled endpoint."""
    with _watching_lock:
        dogs = list(_watching)
    for dog in dogs:
        dog.fire()


def _shut(body: Any) -> None:
    """Shut the socket a botocore streaming body reads from (from another thread)."""
    raw = getattr(body, "_raw_stream", body)
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is None:   # urllib3 let go of the connection object: its file's socket
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _retry_wait(exc: BaseException, attempt: int, attempts: int, dog: Watchdog) -> bool:
    """Sleep before the next attempt; False when there is none: no attempt left, not worth
    a retry, or a wait that would outlast the budget (the last error is then final)."""
    if attempt >= attempts or not retryable(exc):
        return False
    wait = retry_after(exc)
    wait = backoff(attempt) if wait is None else wait
    if wait >= dog.left():
        return False
    time.sleep(wait)
    return True


def read_range(loc: S3Object, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset`` of the listed object (``If-Match``); b"" past its end.
    Retried (backoff, ``Retry-After``) within the object's budget."""
    if length <= 0 or (loc.size is not None and offset >= loc.size):
        return b""
    cfg = loc.config
    attempts = max(1, cfg.attempts)
    with Watchdog(loc, cfg.budget(min(length, loc.size or length))) as dog:
        for attempt in range(1, attempts + 1):
            try:
                dog.check(0)
                body = _get(loc, f"bytes={offset}-{offset + length - 1}")["Body"]
                dog.watch(body)
                try:
                    data: bytes = body.read()
                finally:
                    body.close()
                if loc.size is not None and len(data) < min(length, loc.size - offset):
                    raise http.client.IncompleteRead(data, length - len(data))
                return data
            except S3Error:
                raise
            except Exception as exc:
                if dog.expired:
                    raise dog.error(0) from None
                if _retry_wait(exc, attempt, attempts, dog):
                    continue
                err = explain(exc, cfg, "get")
                _refuse_changed(err, loc)
                if err.status == 416:
                    return b""
                raise err from None
    raise AssertionError("unreachable")


class LocalWriteError(Exception):
    """Writing the download where it goes failed (a full cache disk): not the endpoint's
    fault, never retried here; ``error`` is the OSError."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _write(out: BinaryIO, data: bytes) -> None:
    try:
        out.write(data)
    except OSError as exc:
        raise LocalWriteError(exc) from exc


def download(loc: S3Object, out: BinaryIO, *, head: bytes = b"",
             attempts: int | None = None) -> tuple[str, int]:
    """Stream the object into ``out`` through sha256, in bounded memory; returns (sha256,
    bytes). ``head``: its first bytes, already fetched (the sniff), so only the rest is
    read. A connection reset mid-body resumes from the bytes already written (same ETag,
    so the same object). Bounded by the socket read timeout and the object's budget
    (``Watchdog``): past it, ``S3Error`` with reason ``timeout``. A failed write to ``out``
    raises its own ``OSError`` (not an ``S3Error``): the machine's, not the endpoint's."""
    digest = hashlib.sha256(head)
    try:
        _write(out, head)
    except LocalWriteError as exc:
        raise exc.error from None
    done = len(head)
    if head and loc.size is not None and done >= loc.size:
        return digest.hexdigest(), done
    cfg = loc.config
    attempts = max(1, cfg.attempts if attempts is None else attempts)
    with Watchdog(loc, cfg.budget(loc.size)) as dog:
        for attempt in range(1, attempts + 1):
            try:
                dog.check(done)
                body = _get(loc, f"bytes={done}-" if done else None)["Body"]
                dog.watch(body)
                try:
                    while True:
                        chunk = body.read(CHUNK)
                        if not chunk:
                            break
                        _write(out, chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        dog.check(done)
                finally:
                    body.close()
                if loc.size is not None and done < loc.size:
                    raise http.client.IncompleteRead(b"", loc.size - done)
                return digest.hexdigest(), done
            except S3Error:
                raise
            except LocalWriteError as exc:
                raise exc.error from None
            except Exception as exc:
                if dog.expired:
                    raise dog.error(done) from None
                if _retry_wait(exc, attempt, attempts, dog):
                    continue
                err = explain(exc, cfg, "get")
                _refuse_changed(err, loc)
                raise err from None
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Fetched:
    """An object already downloaded by the daemon's I/O threads into a private temporary
    file, and its sha256 (computed as it streamed in): the locator a worker process gets
    for a bucket photo, so no CPU worker waits on the network. The worker reads the copy;
    messages name the object."""

    origin: S3Object
    copy: str
    sha256: str
    kind: str = "s3-copy"

    @property
    def path(self) -> str:
        return self.origin.path

    @property
    def name(self) -> str:
        return self.origin.name

    @property
    def size(self) -> int | None:
        return self.origin.size

    @property
    def mtime_ns(self) -> int | None:
        return self.origin.mtime_ns


FETCH_PREFIX = ".s3."
FETCH_SUFFIX = ".tmp"


def fetch(loc: S3Object, into: str, head: bytes = b"") -> Fetched:
    """Download the object (its first bytes ``head`` already read) into a temporary file in
    the directory ``into`` (named for its owner, so a crash's leftovers are recognised and
    removed); the caller removes it when done. Blocking: run it in an I/O thread."""
    from lightbox.daemon.media.thumbs import owner_tag

    os.makedirs(into, mode=0o700, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=f"{FETCH_PREFIX}{owner_tag()}.", suffix=FETCH_SUFFIX,
                                dir=into)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, _ = download(loc, out, head=head)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return Fetched(loc, path, digest)


def open_copy(loc: Fetched) -> tuple[BinaryIO, os.stat_result]:
    """A fetched object's copy, opened without following links, with the stat of what was
    listed (its size, its LastModified)."""
    fd = os.open(loc.copy, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        if loc.size is not None and size != loc.size:
            raise OSError(errno.EIO, f"the downloaded copy of {loc.path} has {size} bytes, "
                                     f"not {loc.size}")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    st = os.stat_result((0o100600, 0, 0, 1, 0, 0, size, 0, 0, 0),
                        {"st_mtime_ns": loc.mtime_ns or 0})
    return f, st


def stream(loc: S3Object, attempts: int | None = None) -> Iterator[bytes]:
    """The listed object's bytes (``If-Match`` its ETag), chunk by chunk in bounded memory:
    for a reader that hashes as it copies (a backup of a bucket's photo), so the object is
    read once. A connection reset mid-body resumes from the bytes already given (same ETag,
    so the same object); raises ``Refused`` (changed) or ``S3Error``. What the consumer does
    with a chunk (a write that fails) is its own error, never one of the object's. Bounded
    like ``download``: the socket read timeout and the object's budget (``Watchdog``; the
    consumer's time between chunks counts too), past which ``S3Error`` ``timeout``."""
    done = 0
    cfg = loc.config
    attempts = max(1, cfg.attempts if attempts is None else attempts)
    with Watchdog(loc, cfg.budget(loc.size)) as dog:
        for attempt in range(1, attempts + 1):
            try:
                dog.check(done)
                body = _get(loc, f"bytes={done}-" if done else None)["Body"]
                dog.watch(body)
                try:
                    while True:
                        chunk = body.read(CHUNK)
                        if not chunk:
                            break
                        done += len(chunk)
                        yield chunk
                        dog.check(done)
                finally:
                    body.close()
                if loc.size is not None and done < loc.size:
                    raise http.client.IncompleteRead(b"", loc.size - done)
                return
            except S3Error:
                raise
            except Exception as exc:
                if dog.expired:
                    raise dog.error(done) from None
                if _retry_wait(exc, attempt, attempts, dog):
                    continue
                err = explain(exc, cfg, "get")
                _refuse_changed(err, loc)
                raise err from None


def open_object(loc: S3Object, head: bytes = b"") -> tuple[BinaryIO, os.stat_result]:
    """The object downloaded once into an anonymous temporary file (removed by the system
    when closed, even after a crash), rewound, and a stat of what was listed: how every
    reader that takes a local file (analysis, thumbnails on demand) reads a bucket's.
    ``head``: its first bytes, already read (only the rest is fetched)."""
    tmp = tempfile.TemporaryFile(prefix="lightbox-s3-")  # noqa: SIM115 - returned open
    try:
        _, size = download(loc, tmp, head=head)
        tmp.seek(0)
    except BaseException:
        tmp.close()
        raise
    st = os.stat_result((0o100600, 0, 0, 1, 0, 0, size, 0, 0, 0),
                        {"st_mtime_ns": loc.mtime_ns or 0})
    return tmp, st


def presign(loc: S3Object, expires: int) -> tuple[str, int]:
    """A presigned GET URL and its expiry in seconds: the smaller of the one asked for, the
    provider's limit (7 days for SigV4) and what is left of temporary credentials."""
    cap = min(int(expires), loc.config.quirk.presign_max)
    c = client(loc.config)
    creds = c._request_signer._credentials   # botocore exposes no other way
    expiry = getattr(creds, "_expiry_time", None)
    if expiry is not None:
        left = int((expiry - dt.datetime.now(dt.UTC)).total_seconds())
        cap = max(1, min(cap, left))
    url: str = c.generate_presigned_url(
        "get_object", Params={"Bucket": loc.config.bucket, "Key": loc.key}, ExpiresIn=cap)
    return url, cap


# -- sources.test ------------------------------------------------------------------------
@dataclass
class Check:
    name: str
    ok: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "message": self.message}


def probe(cfg: S3Config, timeout: float = 10.0) -> list[Check]:
    """sources.test: each check in order, stopping at the first that fails.

    endpoint (DNS + TCP), TLS (for https), clock skew (the server's Date), credentials and
    bucket and list permission (one ListObjectsV2 of one key), get permission (a one-byte
    ranged GET of that key).
    """
    checks: list[Check] = []
    url = urllib.parse.urlsplit(cfg.endpoint or f"https://s3.{cfg.region}.amazonaws.com")
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        checks.append(Check(ENDPOINT, False, f"cannot reach {host}:{port} "
                                             f"({exc.strerror or exc}); check the endpoint "
                                             "URL, DNS and the network"))
        return checks
    checks.append(Check(ENDPOINT, True, f"{host}:{port} answers"))
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        try:
            conn = http.client.HTTPSConnection(host, port, timeout=timeout,
                                               context=ssl.create_default_context())
            conn.connect()
        except (ssl.SSLError, ssl.CertificateError) as exc:
            checks.append(Check(TLS, False, f"TLS handshake with {host} failed: "
                                            f"{getattr(exc, 'reason', None) or exc}; check "
                                            "its certificate"))
            return checks
        except OSError as exc:
            checks.append(Check(TLS, False, f"TLS connection to {host} failed: {exc}"))
            return checks
        checks.append(Check(TLS, True, "certificate verified"))
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        checks.append(Check(TLS, True, "plain HTTP: no TLS to check (the secret travels "
                                       "signed but the data in clear)"))
    try:
        conn.request("HEAD", "/")
        date = conn.getresponse().getheader("Date")
    except OSError as exc:
        checks.append(Check(CLOCK, False, f"no answer from {host} to an HTTP request: {exc}"))
        return checks
    finally:
        conn.close()
    if date:
        try:
            skew = parsedate_to_datetime(date).timestamp() - time.time()
        except (TypeError, ValueError):
            skew = 0.0
        if abs(skew) > CLOCK_SKEW_LIMIT:
            checks.append(Check(CLOCK, False, f"this machine's clock is {abs(skew) / 60:.0f} "
                                              "minutes off the server's; requests will be "
                                              "refused until the time is fixed (NTP)"))
            return checks
        checks.append(Check(CLOCK, True, f"clock within {abs(skew):.0f} s of the server's"))
    else:
        checks.append(Check(CLOCK, True, "the server sent no Date; not checked"))
    c = client(cfg)
    try:
        page = c.list_objects_v2(Bucket=cfg.bucket, Prefix=cfg.prefix, MaxKeys=1)
    except Exception as exc:
        err = explain(exc, cfg, "list")
        name = {CREDENTIALS: CREDENTIALS, BUCKET: BUCKET, CLOCK: CLOCK}.get(err.reason, "list")
        if CREDENTIALS not in (name, err.reason):
            checks.append(Check(CREDENTIALS, True, "accepted"))
        if name == "list":
            checks.append(Check(BUCKET, True, f"bucket {cfg.bucket!r} exists"))
        checks.append(Check(name, False, str(err)))
        return checks
    checks.append(Check(CREDENTIALS, True, "accepted"))
    checks.append(Check(BUCKET, True, f"bucket {cfg.bucket!r} exists"))
    checks.append(Check("list", True, "listing allowed"))
    contents = page.get("Contents") or []
    if not contents:
        checks.append(Check("get", True, "nothing to read under the prefix yet; not checked"))
        return checks
    key = contents[0]["Key"]
    try:
        c.get_object(Bucket=cfg.bucket, Key=key, Range="bytes=0-0")["Body"].read()
    except Exception as exc:
        checks.append(Check("get", False, str(explain(exc, cfg, "get"))))
        return checks
    checks.append(Check("get", True, "reading objects allowed"))
    return checks

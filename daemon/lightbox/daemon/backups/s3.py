"""A backup target in an S3 bucket: the same open format as a local folder, as objects.

``<prefix><root name>/<path>`` holds each photo byte for byte, ``<prefix>SHA256SUMS`` and
``<prefix>README.txt`` lie beside them (download the prefix, ``sha256sum -c SHA256SUMS``),
and ``<prefix>.lightbox-target`` is the marker that says the bucket is this target.

Every upload carries its sha256 (``x-amz-checksum-sha256``), which endpoints that support
it verify before they store the object; the object's checksum is then read back with
``HeadObject`` (``ChecksumMode=ENABLED``) and compared before the manifest records it. An
object is never overwritten: a name that holds other content gets the ``name.<sha8>.ext``
variant, one that holds the same content is adopted. All calls are blocking: they run in
threads, never on the event loop.

Files up to ``SINGLE_PUT_MAX`` go in one PutObject; larger ones in a multipart upload
with a sha256 per part (the composite checksum the endpoint verifies part by part).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from lightbox.daemon.backups import files
from lightbox.daemon.media import confine

SINGLE_PUT_MAX = 64 << 20
PART_SIZE = 16 << 20
SECRET_KEYS = ("secret_access_key",)


def _b64(hexdigest: str) -> str:
    return base64.b64encode(bytes.fromhex(hexdigest)).decode()


class S3Store:
    """One bucket (and prefix) as a target."""

    def __init__(self, config: dict[str, Any], marker: str) -> None:
        self.config = config
        self.bucket: str = config["bucket"]
        prefix = str(config.get("prefix") or "").strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.marker = marker
        self._client: Any = None

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3", endpoint_url=self.config.get("endpoint_url") or None,
                region_name=self.config.get("region") or None,
                aws_access_key_id=self.config.get("access_key_id") or None,
                aws_secret_access_key=self.config.get("secret_access_key") or None,
                config=Config(s3={"addressing_style": "path"},
                              request_checksum_calculation="when_required",
                              response_checksum_validation="when_required",
                              connect_timeout=10, read_timeout=60,
                              retries={"mode": "standard", "total_max_attempts": 3}))
        return self._client

    def key(self, rel: str) -> str:
        return self.prefix + rel

    # -- the bucket as a whole --------------------------------------------------------------
    def _error(self, exc: Exception, where: str) -> files.TargetError:
        code = ""
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchBucket", "404", "NotFound"):
            return files.TargetError(files.TARGET_MISSING,
                                     f"the bucket {self.bucket} does not exist ({where})")
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return files.TargetError(files.TARGET_READ_ONLY,
                                     f"access to {self.where} is denied ({where})")
        if code in ("EntityTooLarge", "QuotaExceeded", "InsufficientStorage"):
            return files.TargetError(files.DISK_FULL, f"the bucket takes no more ({where})")
        text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return files.TargetError(files.TARGET_IO, f"{self.where}: {text} ({where})")

    def read_marker(self) -> dict[str, Any] | None:
        try:
            body = self.client().get_object(Bucket=self.bucket,
                                            Key=self.key(files.MARKER))["Body"].read(65536)
            data = json.loads(body)
        except Exception:
            return None
        return data if isinstance(data, dict) else None

    def prepare(self, name: str) -> None:
        c = self.client()
        try:
            c.head_bucket(Bucket=self.bucket)
            c.put_object(Bucket=self.bucket, Key=self.key(files.MARKER),
                         Body=json.dumps({"lightbox": "backup target", "name": name,
                                          "id": self.marker}, indent=1).encode() + b"\n")
            c.put_object(Bucket=self.bucket, Key=self.key(files.README),
                         Body=files.README_TEXT.format(path=self.where).encode())
            if not self._exists(files.SUMS):
                c.put_object(Bucket=self.bucket, Key=self.key(files.SUMS), Body=b"")
        except Exception as exc:
            raise self._error(exc, "preparing the target") from None

    def check(self) -> files.TargetError | None:
        c = self.client()
        try:
            c.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            return self._error(exc, "looking for the bucket")
        found = self.read_marker()
        if found is None or found.get("id") != self.marker:
            return files.TargetError(files.TARGET_MISSING, (
                f"{self.where} is not this target: its marker {files.MARKER} is "
                f"{'missing' if found is None else 'another'}"))
        probe = self.key(f"{files.TMP_DIR}/probe-{os.getpid()}")
        try:
            c.put_object(Bucket=self.bucket, Key=probe, Body=b"")
            c.delete_object(Bucket=self.bucket, Key=probe)
        except Exception as exc:
            return self._error(exc, "a test write")
        return None

    def _exists(self, rel: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.client().head_object(
                Bucket=self.bucket, Key=self.key(rel), ChecksumMode="ENABLED")
            return head
        except Exception as exc:
            response = getattr(exc, "response", None)
            code = str((response or {}).get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    # -- copying ----------------------------------------------------------------------------
    def _upload(self, item: files.CopyItem, src: BinaryIO, rel: str, size: int) -> None:
        c = self.client()
        key = self.key(rel)
        src.seek(0)
        if size <= SINGLE_PUT_MAX:
            c.put_object(Bucket=self.bucket, Key=key, Body=src.read(),
                         ChecksumSHA256=_b64(item.sha256))
            return
        up = c.create_multipart_upload(Bucket=self.bucket, Key=key,
                                       ChecksumAlgorithm="SHA256")
        parts = []
        try:
            number = 1
            while chunk := src.read(PART_SIZE):
                digest = _b64(hashlib.sha256(chunk).hexdigest())
                r = c.upload_part(Bucket=self.bucket, Key=key, UploadId=up["UploadId"],
                                  PartNumber=number, Body=chunk, ChecksumSHA256=digest)
                parts.append({"PartNumber": number, "ETag": r["ETag"],
                              "ChecksumSHA256": digest})
                number += 1
            c.complete_multipart_upload(Bucket=self.bucket, Key=key,
                                        UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": parts})
        except BaseException:
            c.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=up["UploadId"])
            raise

    def copy_run(self, batches: Iterable[list[files.CopyItem]], threads: int
                 ) -> files.BatchThreads:
        """A run's batches, ``threads`` at once (nothing to pipeline: each upload is
        checked by the endpoint before the next step)."""
        return files.BatchThreads(self.copy_batch, batches, threads)

    def copy_batch(self, items: list[files.CopyItem]) -> files.Batch:
        """Upload what the target lacks; the same outcomes as a local batch."""
        out = files.Batch()
        for item in items:
            # Opened once (a bucket source's object is fetched once, into an anonymous
            # temporary file): hashed first, so bit rot is caught before anything is sent,
            # then uploaded from the same open file.
            with contextlib.ExitStack() as held:
                out_item = self._one(item, held)
                if isinstance(out_item, files.TargetError):
                    out.stop = out_item
                    return out
                out.outcomes.append(out_item)
        return out

    def _one(self, item: files.CopyItem, held: contextlib.ExitStack
             ) -> files.CopyOutcome | files.TargetError:
        try:
            src, _ = confine.open_photo(item.loc)
            held.enter_context(src)
            sha, size = files.hash_file(src)
        except confine.Refused as exc:
            return files.CopyOutcome(item, "changed", message=str(exc))
        except OSError as exc:
            return files.CopyOutcome(item, "failed", message=f"{exc.strerror or exc}")
        if sha != item.sha256:
            return files.CopyOutcome(item, "damaged", message=(
                f"content changed at the source (sha256 {sha[:12]}…, the catalog has "
                f"{item.sha256[:12]}…) while its size and mtime did not"))
        try:
            rel, adopted = self._place(item, src, size)
        except files.TargetError as exc:
            return exc
        except (OSError, confine.Refused) as exc:
            return files.CopyOutcome(item, "failed", message=str(exc))
        except Exception as exc:
            return self._error(exc, "uploading a copy")
        return files.CopyOutcome(item, "adopted" if adopted else "copied", rel=rel,
                                 bytes=0 if adopted else size)

    def _place(self, item: files.CopyItem, src: BinaryIO, size: int
               ) -> tuple[str, bool]:
        rel = item.rel
        for attempt in range(4):
            head = self._exists(rel)
            if head is not None:
                if head.get("ChecksumSHA256") == _b64(item.sha256) \
                        or self._object_sha(rel) == item.sha256:
                    return rel, True
                rel = files.variant(item.rel, item.sha256[attempt * 8:])
                continue
            self._upload(item, src, rel, size)
            head = self._exists(rel)
            stored = (head or {}).get("ChecksumSHA256")
            # The endpoint's checksum of what it stored; multipart objects carry a checksum
            # of the parts' checksums ("…-N"), so those are read back instead.
            if stored == _b64(item.sha256):
                return rel, False
            if self._object_sha(rel) != item.sha256:
                self.client().delete_object(Bucket=self.bucket, Key=self.key(rel))
                raise OSError(0, "the uploaded object does not match the photo's sha256")
            return rel, False
        raise files.TargetError(files.TARGET_IO, f"no free name for {item.rel} on the target")

    def _object_sha(self, rel: str) -> str | None:
        try:
            body = self.client().get_object(Bucket=self.bucket, Key=self.key(rel))["Body"]
        except Exception:
            return None
        h = hashlib.sha256()
        for chunk in iter(lambda: body.read(files.CHUNK), b""):
            h.update(chunk)
        return h.hexdigest()

    # -- the rest of a run --------------------------------------------------------------------
    def write_sums(self, rows: Iterable[tuple[str, str]]) -> None:
        body = b"".join(files.sums_line(sha, rel) for sha, rel in rows)
        try:
            self.client().put_object(Bucket=self.bucket, Key=self.key(files.SUMS), Body=body,
                                     ChecksumSHA256=_b64(hashlib.sha256(body).hexdigest()))
        except Exception as exc:
            raise self._error(exc, "writing SHA256SUMS") from None

    def verify_one(self, rel: str, sha256: str, size: int) -> tuple[str, int]:
        try:
            body = self.client().get_object(Bucket=self.bucket, Key=self.key(rel))["Body"]
        except Exception:
            return "missing", 0
        h = hashlib.sha256()
        n = 0
        for chunk in iter(lambda: body.read(files.CHUNK), b""):
            h.update(chunk)
            n += len(chunk)
        return ("ok" if h.hexdigest() == sha256 and n == size else "changed"), n

    def walk_files(self) -> Iterator[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(self.prefix):]
                top = rel.split("/", 1)[0]
                if top in files.RESERVED:
                    continue
                yield rel

    def clear_temp(self) -> int:
        return 0

    def sums_exist(self) -> bool:
        try:
            return self._exists(files.SUMS) is not None
        except Exception:
            return False

    def delete(self, rel: str) -> None:
        self.client().delete_object(Bucket=self.bucket, Key=self.key(rel))

    def restore_one(self, rel: str, dest: str, sha256: str, overwrite: bool
                    ) -> tuple[str, int, str]:
        """As ``files.restore_one``, reading the object."""
        tmp_src = None
        try:
            body = self.client().get_object(Bucket=self.bucket, Key=self.key(rel))["Body"]
        except Exception:
            return "missing", 0, "the object is not on the target"
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp_src = os.path.join(os.path.dirname(dest),
                               f".{os.path.basename(dest)[:100]}.{os.getpid()}.lbdownload")
        try:
            with open(tmp_src, "wb") as f:
                for chunk in iter(lambda: body.read(files.CHUNK), b""):
                    f.write(chunk)
            return files.restore_one(tmp_src, dest, sha256, overwrite)
        except OSError as exc:
            return files.restore_failure(exc)
        finally:
            try:
                os.unlink(tmp_src)
            except OSError:
                pass

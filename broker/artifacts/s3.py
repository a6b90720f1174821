"""An S3 bucket (and key prefix) as an ArtifactStore, through aiobotocore.

The same calls run against AWS and against any S3-compatible endpoint (MinIO, moto): only
`endpoint_url` differs. Credentials and region come from the usual AWS chain (environment,
~/.aws, instance role) unless given. aiobotocore (and with it aiohttp) is imported only when
an S3 store is first used, so a worker with a local store never loads it.

Objects live at `{prefix}objects/ab/cdef…`, as in a LocalStore. An upload of a file larger
than `multipart_threshold` is a multipart upload; either way the object appears only when
complete. The bytes sent are hashed again while sending: a file that changed since it was
hashed is refused, never stored under the wrong key.

A store keeps one client (a connection pool) from its first use on, in the event loop of
that use; its owner calls `aclose()` when done.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from broker.artifacts.base import (
    CHUNK_BYTES,
    ArtifactError,
    ArtifactNotFound,
    ObjectInfo,
    check_sha,
    hash_file,
    object_relpath,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

MIB = 1024 * 1024
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def _is_not_found(error: Exception) -> bool:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) in _NOT_FOUND


def _read_verified(path: Path, expected: ObjectInfo) -> bytes:
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != expected.sha256:
        raise ArtifactError(f"{path} changed while it was being stored")
    return data


def _write_temp(directory: Path, prefix: str) -> tuple[IO[bytes], Path]:
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix)
    return os.fdopen(fd, "wb"), Path(name)


def _finish_temp(f: IO[bytes], tmp: Path, dest: Path | None) -> None:
    """Close the temp file; rename it to dest, or remove it when dest is None."""
    try:
        f.flush()
        os.fsync(f.fileno())
    finally:
        f.close()
    if dest is None:
        tmp.unlink(missing_ok=True)
    else:
        os.replace(tmp, dest)


class S3Store:
    """An ArtifactStore in `s3://bucket/prefix`."""

    def __init__(
        self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
        region: str | None = None, multipart_threshold: int = 16 * MIB, part_bytes: int = 8 * MIB,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 store needs a bucket")
        if part_bytes < 5 * MIB:
            raise ValueError("S3 parts are at least 5 MiB")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        self.multipart_threshold = max(multipart_threshold, part_bytes)
        self.part_bytes = part_bytes
        self._options: dict[str, Any] = dict(client_options or {})
        if endpoint_url:
            self._options["endpoint_url"] = endpoint_url
        if region:
            self._options["region_name"] = region
        self._client: Any = None
        self._client_cm: Any = None
        self._lock = asyncio.Lock()

    def key(self, sha256: str) -> str:
        return self.prefix + object_relpath(sha256)

    async def _s3(self) -> Any:
        """The store's aiobotocore client, created on first use (bound to this event loop)."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    from aiobotocore.session import get_session

                    cm = get_session().create_client("s3", **self._options)
                    self._client = await cm.__aenter__()
                    self._client_cm = cm
        return self._client

    async def aclose(self) -> None:
        """Close the client (and its connections); the store reopens one if used again."""
        cm, self._client, self._client_cm = self._client_cm, None, None
        if cm is not None:
            await cm.__aexit__(None, None, None)

    # -- writing -------------------------------------------------------------------------
    async def _head(self, s3: Any, key: str) -> int | None:
        try:
            head = await s3.head_object(Bucket=self.bucket, Key=key)
        except Exception as e:
            if _is_not_found(e):
                return None
            raise
        return int(head["ContentLength"])

    async def _multipart(self, s3: Any, path: Path, info: ObjectInfo, key: str) -> None:
        upload = await s3.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload_id = upload["UploadId"]
        try:
            parts = await self._send_parts(s3, path, key, upload_id, info)
            await s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(s3.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id))
            raise

    async def _send_parts(
        self, s3: Any, path: Path, key: str, upload_id: str, info: ObjectInfo
    ) -> list[dict[str, Any]]:
        digest = hashlib.sha256()
        parts: list[dict[str, Any]] = []
        f = await asyncio.to_thread(path.open, "rb")
        try:
            while chunk := await asyncio.to_thread(f.read, self.part_bytes):
                digest.update(chunk)
                number = len(parts) + 1
                r = await s3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                         PartNumber=number, Body=chunk)
                parts.append({"PartNumber": number, "ETag": r["ETag"]})
        finally:
            await asyncio.to_thread(f.close)
        if digest.hexdigest() != info.sha256:
            raise ArtifactError(f"{path} changed while it was being stored")
        return parts

    async def put_file(self, path: Path) -> ObjectInfo:
        path = Path(path)
        info = await asyncio.to_thread(hash_file, path)
        key = self.key(info.sha256)
        s3 = await self._s3()
        if await self._head(s3, key) == info.size:
            return info  # content-addressed: already stored
        if info.size > self.multipart_threshold:
            await self._multipart(s3, path, info, key)
        else:
            data = await asyncio.to_thread(_read_verified, path, info)
            await s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return info

    async def put_bytes(self, data: bytes) -> ObjectInfo:
        sha = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        info = ObjectInfo(sha, len(data))
        s3 = await self._s3()
        if await self._head(s3, self.key(sha)) != info.size:
            await s3.put_object(Bucket=self.bucket, Key=self.key(sha), Body=data)
        return info

    # -- reading -------------------------------------------------------------------------
    async def _get(self, s3: Any, sha256: str) -> Any:
        try:
            return await s3.get_object(Bucket=self.bucket, Key=self.key(sha256))
        except Exception as e:
            if _is_not_found(e):
                raise ArtifactNotFound(f"no object {sha256} in {self.url}") from None
            raise

    async def get_file(self, sha256: str, dest: Path) -> int:
        check_sha(sha256)
        dest = Path(dest)
        s3 = await self._s3()
        response = await self._get(s3, sha256)
        f, tmp = await asyncio.to_thread(_write_temp, dest.parent, f".{dest.name}.")
        target: Path | None = None
        try:
            digest, size = hashlib.sha256(), 0
            async with response["Body"] as body:
                while chunk := await body.read(CHUNK_BYTES):
                    digest.update(chunk)
                    size += len(chunk)
                    await asyncio.to_thread(f.write, chunk)
            if digest.hexdigest() != sha256:
                raise ArtifactError(f"object {sha256} in {self.url} is corrupt")
            target = dest
        finally:
            await asyncio.to_thread(_finish_temp, f, tmp, target)
        return size

    async def exists(self, sha256: str) -> bool:
        return await self.size(sha256) is not None

    async def size(self, sha256: str) -> int | None:
        check_sha(sha256)
        s3 = await self._s3()
        return await self._head(s3, self.key(sha256))

    async def iter_bytes(
        self, sha256: str, chunk_bytes: int = CHUNK_BYTES
    ) -> AsyncIterator[bytes]:
        check_sha(sha256)
        s3 = await self._s3()
        response = await self._get(s3, sha256)
        async with response["Body"] as body:
            while chunk := await body.read(chunk_bytes):
                yield chunk

    async def iter_keys(self) -> AsyncIterator[str]:
        start = self.prefix + "objects/"
        s3 = await self._s3()
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
            for obj in page.get("Contents", []):
                sub, _, rest = obj["Key"][len(start):].partition("/")
                key = sub + rest
                with contextlib.suppress(ArtifactError):
                    yield check_sha(key)

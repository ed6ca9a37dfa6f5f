"""The researcher's side of the catalog: list releases, accept terms, fetch and verify bundles.

`fetch` downloads into a hidden `.part` file next to the target (resumed with an HTTP Range
request if a previous attempt was interrupted), checks the archive's SHA-256 against the
catalog entry, unpacks it into a hidden directory, verifies the signed bundle there, and only
then renames it to the target. A failure at any step leaves no directory that looks complete.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import ssl
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import httpx

from common.errors import BusgenError, DataError, VerificationError
from common.files import sha256_file
from common.release.bundle import valid_release_id, verify_bundle


class CatalogError(BusgenError):
    """The catalog refused a request or could not be reached."""


def partial_path(out_dir: Path, release_id: str) -> Path:
    """Where an unfinished download of `release_id` into `out_dir` is kept for resuming."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.{release_id}.part"


class CatalogClient:
    """A token-authenticated HTTPS client for one catalog."""

    def __init__(self, url: str, token: str, ca: Path | None = None, timeout: float = 30.0) -> None:
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca)) if ca else True
        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            verify=verify,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}"},
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> CatalogClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _get(self, path: str) -> dict:
        return self._check(self._send("GET", path)).json()

    def _send(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            return self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise CatalogError(f"{self.http.base_url}: cannot reach the catalog ({exc})") from exc

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code == 401:
            raise CatalogError(
                f"{self.http.base_url}: token refused (unknown or revoked; ask the "
                "coordinator for a new one)"
            )
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text[:200]
            raise CatalogError(f"{response.request.url}: HTTP {response.status_code}: {detail}")
        return response

    def releases(self) -> list[dict]:
        return self._get("/api/v1/releases")["releases"]

    def release(self, release_id: str) -> dict:
        return self._get(f"/api/v1/releases/{release_id}")

    def terms(self) -> dict:
        return self._get("/api/v1/terms")

    def accept_terms(self, version: str) -> dict:
        return self._check(
            self._send("POST", "/api/v1/terms/accept", json={"version": version})
        ).json()

    def trust(self) -> dict:
        return self._get("/api/v1/trust")

    def download(
        self, release_id: str, dest: Path, size: int, progress: Callable[[int], None] | None = None
    ) -> None:
        """Download the archive into `dest`, continuing from its current length with Range."""
        offset = dest.stat().st_size if dest.exists() else 0
        if offset > size:
            dest.unlink()
            offset = 0
        if offset == size:
            return
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with self.http.stream(
                "GET", f"/api/v1/releases/{release_id}/bundle.tar", headers=headers
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    if response.status_code == 403:
                        raise CatalogError(
                            f"{release_id}: {response.json().get('detail')}; run "
                            "`busgen-release terms --accept`"
                        )
                    self._check(response)
                if offset and response.status_code != 206:
                    offset = 0  # the server sent the whole file: start over
                with open(dest, "ab" if offset else "wb") as fh:
                    if progress:
                        progress(offset)
                    for chunk in response.iter_bytes(1 << 16):
                        fh.write(chunk)
                        if progress:
                            progress(len(chunk))
        except httpx.HTTPError as exc:
            raise CatalogError(
                f"{release_id}: download interrupted ({exc}); run fetch again to resume"
            ) from exc


def _safe_extract(archive: Path, into: Path) -> None:
    """Unpack only plain files and directories with relative names inside `into`."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            name = PurePosixPath(member.name)
            if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
                raise VerificationError(
                    f"{archive}: archive member {member.name!r} is not a plain "
                    "file inside the bundle"
                )
        tar.extractall(into, filter="data")


def fetch_release(
    client: CatalogClient,
    release_id: str,
    out_dir: Path,
    trust_file: Path | None = None,
    progress: Callable[[int], Callable[[int], None]] | None = None,
) -> dict:
    """Download, check and verify a release into `out_dir`; returns the verified manifest.

    Without `trust_file` the bundle is verified against the trust file the catalog serves
    (authenticated by the catalog's TLS certificate); pin your own with `trust_file` to trust
    only the site keys you chose. `progress(total_bytes)` may return a callback that is given
    the byte count of each piece written (a resumed download first reports what it already had).
    """
    out_dir = Path(out_dir)
    if not valid_release_id(release_id):
        raise DataError(f"{release_id!r} is not a release id (see `busgen-release list`)")
    if out_dir.exists():
        raise DataError(f"{out_dir}: already exists; choose another --out")
    entry = client.release(release_id)
    size, expected = entry["archive"]["size"], entry["archive"]["sha256"]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(out_dir, release_id)
    client.download(release_id, part, size, progress(size) if progress else None)

    if sha256_file(part) != expected:
        part.unlink()
        raise VerificationError(
            f"{release_id}: the downloaded archive does not match the catalog's "
            "SHA-256; the download was discarded, run fetch again"
        )

    work = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.verify-"))
    try:
        bundle = work / "bundle"
        bundle.mkdir()
        _safe_extract(part, bundle)
        if trust_file is None:
            trust_file = work / "catalog-trust.json"
            trust_file.write_text(json.dumps(client.trust()))
        try:
            manifest = verify_bundle(bundle, trust_file)
        except VerificationError as exc:
            part.unlink()
            raise VerificationError(
                f"{release_id} failed verification, nothing was kept: "
                + str(exc).replace(str(bundle), str(out_dir))
            ) from exc
        os.replace(bundle, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    part.unlink(missing_ok=True)
    return manifest

"""The catalog's HTTPS API (FastAPI), served by `busgen-server serve`.

    GET  /healthz                                   liveness, no token
    GET  /api/v1/releases                           entries with dataset cards and audit summaries
    GET  /api/v1/releases/{id}                      one entry with its card
    GET  /api/v1/releases/{id}/bundle.tar           the bundle archive; HTTP Range for resume;
                                                    needs the current terms accepted
    GET  /api/v1/terms                              data use terms text and version
    POST /api/v1/terms/accept  {"version": V}       records acceptance for the calling token
    GET  /api/v1/trust                              the live consortium trust file if the server
                                                    was given one, else the copy made at publish

Every call but /healthz needs `Authorization: Bearer <token>`. Unknown or revoked tokens get
401, unknown releases and anything path-like get 404 from a lookup among published entries, so
no request can name a file. Accesses go to the hash-chained access log; this process is its
only writer, and terms acceptances are replayed from it on start.
"""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel

from server.catalog.catalog import Catalog
from server.catalog.tokens import TokenStore


class TermsAcceptance(BaseModel):
    version: str


class _AccessLog:
    """Serialises appends from the worker threads and remembers terms acceptances."""

    def __init__(self, catalog: Catalog) -> None:
        self.log = catalog.access_log
        self.lock = threading.Lock()
        self.accepted = {
            (e["token_id"], e["terms_version"])
            for e in self.log.verify()
            if e["event"] == "terms_accepted"
        }

    def append(self, event: str, **fields) -> None:
        with self.lock:
            self.log.append(event, **fields)
            if event == "terms_accepted":
                self.accepted.add((fields["token_id"], fields["terms_version"]))


def create_app(catalog_dir: Path, trust_file: Path | None = None) -> FastAPI:
    """Build the app for an existing catalog directory.

    With `trust_file` (the coordinator's live trust file) a key revocation reaches researchers
    at once; without it they get the copy the latest publish verified against.
    """
    catalog = Catalog(catalog_dir).require().ensure()
    served_trust = Path(trust_file) if trust_file else catalog.trust_file
    tokens = TokenStore(catalog.tokens_file)
    access = _AccessLog(catalog)
    app = FastAPI(
        title="busgen-fed release catalog", docs_url=None, redoc_url=None, openapi_url=None
    )

    def researcher(request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token_id, state = (
            tokens.check(token.strip()) if scheme.lower() == "bearer" else (None, "unknown")
        )
        if state == "revoked":
            access.append(
                "refused", token_id=token_id, reason="revoked token", path=request.url.path
            )
        if state != "ok":
            raise HTTPException(
                401, "missing, unknown or revoked token", headers={"WWW-Authenticate": "Bearer"}
            )
        return token_id

    def lookup(release_id: str) -> dict:
        entry = catalog.release(release_id)
        if entry is None:
            raise HTTPException(404, "no such release")
        return entry

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/api/v1/releases")
    def list_releases(token_id: str = Depends(researcher)) -> dict:
        access.append("list", token_id=token_id)
        return {"releases": [{**e, "card": catalog.card(e)} for e in catalog.releases()]}

    @app.get("/api/v1/releases/{release_id}")
    def show_release(release_id: str, token_id: str = Depends(researcher)) -> dict:
        entry = lookup(release_id)
        access.append("view", token_id=token_id, release_id=release_id)
        return {**entry, "card": catalog.card(entry)}

    @app.get("/api/v1/releases/{release_id}/bundle.tar")
    def download(release_id: str, request: Request, token_id: str = Depends(researcher)):
        entry = lookup(release_id)
        _, version = catalog.terms()
        if (token_id, version) not in access.accepted:
            access.append(
                "refused", token_id=token_id, release_id=release_id, reason="terms not accepted"
            )
            return JSONResponse(
                {
                    "detail": "accept the data use terms first (GET /api/v1/terms, "
                    "POST /api/v1/terms/accept)",
                    "terms_version": version,
                },
                status_code=403,
            )
        access.append(
            "download",
            token_id=token_id,
            release_id=release_id,
            archive_sha256=entry["archive"]["sha256"],
            range=request.headers.get("range"),
        )
        return FileResponse(
            catalog.archive(entry), media_type="application/x-tar", filename=f"{release_id}.tar"
        )

    @app.get("/api/v1/terms")
    def terms(token_id: str = Depends(researcher)) -> dict:
        text, version = catalog.terms()
        return {
            "version": version,
            "text": text,
            "accepted": (token_id, version) in access.accepted,
        }

    @app.post("/api/v1/terms/accept")
    def accept_terms(body: TermsAcceptance, token_id: str = Depends(researcher)) -> dict:
        _, version = catalog.terms()
        if body.version != version:
            raise HTTPException(
                409, f"the terms changed (current version {version}); read them again"
            )
        if (token_id, version) not in access.accepted:
            access.append("terms_accepted", token_id=token_id, terms_version=version)
        return {"accepted": True, "version": version}

    @app.get("/api/v1/trust")
    def trust(token_id: str = Depends(researcher)):
        if not served_trust.is_file():
            raise HTTPException(404, "no trust file yet (nothing published)")
        return FileResponse(served_trust, media_type="application/json")

    return app

"""`busgen-server token add|revoke|list`: researchers' catalog access tokens."""

from __future__ import annotations

from pathlib import Path

import click

from common.cli import echo_json

catalog_option = click.option(
    "--catalog",
    "catalog_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Catalog directory.",
)


@click.group()
def token() -> None:
    """Issue, revoke and list researchers' access tokens."""


@token.command("add")
@catalog_option
@click.argument("researcher")
@click.option("--json", "as_json", is_flag=True)
def token_add(catalog_dir: Path, researcher: str, as_json: bool) -> None:
    """Issue a token for RESEARCHER (name or e-mail). The token is printed once; only its hash is kept."""
    from server.catalog import Catalog, TokenStore

    catalog = Catalog(catalog_dir).ensure()
    token_id, secret = TokenStore(catalog.tokens_file).add(researcher)
    if as_json:
        echo_json({"token_id": token_id, "token": secret, "researcher": researcher})
    else:
        click.echo(f"token {token_id} for {researcher} (give it to them; it is not stored):")
        click.echo(secret)


@token.command("revoke")
@catalog_option
@click.argument("token_id")
def token_revoke(catalog_dir: Path, token_id: str) -> None:
    """Revoke a token; the running server refuses it from the next request on."""
    from server.catalog import Catalog, TokenStore

    TokenStore(Catalog(catalog_dir).tokens_file).revoke(token_id)
    click.echo(f"revoked token {token_id}")


@token.command("list")
@catalog_option
@click.option("--json", "as_json", is_flag=True)
def token_list(catalog_dir: Path, as_json: bool) -> None:
    """Tokens with their status and the terms versions each accepted (from the access log)."""
    from server.catalog import Catalog, TokenStore

    catalog = Catalog(catalog_dir)
    tokens = TokenStore(catalog.tokens_file).list()
    for entry in catalog.access_log.verify():
        if entry["event"] == "terms_accepted" and entry["token_id"] in tokens:
            tokens[entry["token_id"]].setdefault("terms_accepted", []).append(
                {"version": entry["terms_version"], "time": entry["time"]}
            )
    if as_json:
        echo_json(tokens)
        return
    for token_id, entry in sorted(tokens.items(), key=lambda kv: kv[1]["created"]):
        accepted = ", ".join(a["version"] for a in entry.get("terms_accepted", [])) or "-"
        click.echo(f"{token_id}  {entry['status']:<8} {entry['researcher']:<30} terms: {accepted}")


commands = [token]

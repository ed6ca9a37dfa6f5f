"""`busgen-server serve`: the release catalog over HTTPS."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--catalog",
    "catalog_dir",
    required=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
)
@click.option(
    "--cert",
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Server certificate (PEM), e.g. from the consortium CA.",
)
@click.option(
    "--key",
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Private key of the certificate (PEM).",
)
@click.option(
    "--trust",
    "trust_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Live consortium trust file to serve to researchers (revocations apply at "
    "once); default: the copy made by the latest publish.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8443, show_default=True, type=int)
def serve(
    catalog_dir: Path, cert: Path, key: Path, trust_file: Path | None, host: str, port: int
) -> None:
    """Serve the catalog to researchers (tokens from `busgen-server token add`)."""
    import uvicorn

    from server.catalog.app import create_app

    app = create_app(catalog_dir, trust_file)
    click.echo(f"serving catalog {catalog_dir} at https://{host}:{port}", err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="info",
        workers=1,
    )


commands = [serve]

"""Shared plumbing for the three command-line tools.

Each tool is a click group whose subcommands live one module each in a `commands` package
(`client/commands`, `server/commands`, `common/release/commands`); a module exposes `commands`,
a list of click commands. Subcommands parse arguments and call library code, nothing more; heavy
imports (torch, flwr) happen inside the command so `--help` stays instant.

Other installed packages may add subcommands through the entry-point group
`<tool>.commands`, e.g. `busgen_server.commands` (the simulation package adds `busgen-server demo` and
`busgen-site simulate` this way), so a tool never imports the package that extends it.
"""

from __future__ import annotations

import importlib
import json
import logging
import pkgutil
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import click

from common import __version__
from common.errors import BusgenError


class BusgenGroup(click.Group):
    """A click group that prints domain errors as one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BusgenError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


def make_group(name: str, help_text: str, commands_package: str) -> click.Group:
    """Build a tool's top-level group and register every module in `commands_package`."""

    @click.group(
        name=name,
        cls=BusgenGroup,
        help=help_text,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    @click.version_option(__version__, prog_name=name)
    @click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
    def group(verbose: bool) -> None:
        logging.basicConfig(
            level=logging.DEBUG if verbose else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )

    package = importlib.import_module(commands_package)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands_package}.{info.name}")
        for command in getattr(module, "commands", []):
            group.add_command(command)
    for plugin in entry_points(group=f"{name.replace('-', '_')}.commands"):
        try:
            extra = plugin.load()
        except ModuleNotFoundError as exc:  # e.g. a site image installs no simulation package
            if exc.name != plugin.module.split(".")[0]:
                raise
            continue
        for command in extra:
            group.add_command(command)
    return group


def config_options(func: Callable) -> Callable:
    """`--config PROFILE` and repeatable `--set key=value` overrides."""
    func = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a config key, e.g. --set model.image_size=64.",
    )(func)
    func = click.option(
        "--config",
        "config_path",
        default="cpu-demo",
        show_default=True,
        help="Config profile: a YAML file or a name in configs/.",
    )(func)
    return func


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))

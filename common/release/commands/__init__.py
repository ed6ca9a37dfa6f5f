"""Subcommands, one module each; each module exposes `commands`."""

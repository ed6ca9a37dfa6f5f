"""The researcher's path, in one place: the signed bundle format, signatures and trust files,
the catalog client, the loader and the `busgen-release` commands.

Installable without torch, opacus or flwr (the core distribution); `load_release` imports torch
only when it is called.
"""

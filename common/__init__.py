"""Code shared by the site client and the coordinator: model, config, privacy, signing, phantom."""

__version__ = "0.1.0"

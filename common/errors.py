"""One exception type per domain, each carrying a message a hospital IT person can act on.

The command-line tools print these without a traceback and exit with the code given here.
"""


class BusgenError(Exception):
    """Base class: a problem the user can fix; the CLI prints the message and exits."""

    exit_code = 2


class ConfigError(BusgenError):
    """A config profile or override is missing, malformed or of the wrong type."""


class DataError(BusgenError):
    """An input file, store or dataset folder is unreadable or inconsistent."""


class DeidError(BusgenError):
    """De-identification could not run (not: one bad input file, which is quarantined)."""


class PolicyError(BusgenError):
    """A job would break the site's privacy policy; nothing was trained or recorded."""

    exit_code = 3


class VerificationError(BusgenError):
    """A signature, hash, manifest or log chain does not verify."""

    exit_code = 4


class FederationError(BusgenError):
    """A federated run cannot continue (quorum lost, SuperLink unreachable, bad checkpoint)."""

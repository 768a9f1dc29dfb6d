"""ocirun: an OCI runtime-spec compliant, runc-compatible container runtime."""

__version__ = "0.1.0"
#: The runtime-spec version this runtime implements (reported by `state`, `features`, `--version`).
SPEC_VERSION = "1.3.0"

"""`spec` (write runc's default config.json into a bundle) and `features` (print what ocirun supports)."""
from __future__ import annotations

import os
import sys


def cmd_features(rt, args: list[str], flags: dict, g: dict) -> int:
    import json

    from ..features import features

    sys.stdout.write(json.dumps(features(), indent=4) + "\n")
    return 0


def cmd_spec(rt, args: list[str], flags: dict, g: dict) -> int:
    """``spec [--bundle DIR] [--rootless]``: refuses to overwrite an existing config.json, as runc."""
    import json

    from ..specgen import default_spec

    bundle = flags.get("bundle") or "."
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        from ..errors import OciError

        raise OciError(f"File {path} exists. Remove it first")
    with open(path, "w") as f:
        json.dump(default_spec(rootless=bool(flags.get("rootless"))), f, indent="\t")
    return 0

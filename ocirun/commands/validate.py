"""`ocirun validate [--bundle DIR]`: every problem of a bundle's config.json, at once.

`create` stops at the first problem, checked by ocirun's own small validator (ocirun.schema), which is
fast enough for the lifecycle's hot path.  This command is the full check for a person fixing a config:
the reference validator, jsonschema (Draft 4, over the same spec/ schemas), lists every schema error, and
when the schema is satisfied ocirun's semantic checks (ocirun.validate) run as `create` would run them.
jsonschema is imported here only: never by create/start/state/kill/delete.
"""
from __future__ import annotations

import os
import sys


def schema_errors(raw: dict) -> list[str]:
    """Every schema error of ``raw`` (a parsed config.json), as ``<field>: <message>``, in document order."""
    from jsonschema import Draft4Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    from ..fastjson import loads
    from ..schema import ROOTS, schema_dir

    resources = []
    for name in sorted(os.listdir(schema_dir())):
        if name.endswith(".json"):
            with open(os.path.join(schema_dir(), name), "rb") as f:
                resources.append((name, Resource.from_contents(loads(f.read()), default_specification=DRAFT4)))
    validator = Draft4Validator({"$ref": ROOTS["config"]}, registry=Registry().with_resources(resources))
    found = sorted(validator.iter_errors(raw), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{_field(e.absolute_path)}: {e.message}" for e in found]


def _field(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def check_bundle(bundle: str) -> list[str]:
    """Every problem found in ``bundle``/config.json: unreadable file, version, schema, semantics."""
    from .. import config
    from ..errors import ConfigError

    try:
        raw = config.read_json(os.path.join(bundle, "config.json"), "config file")
        config.check_version(raw.get("ociVersion"))
    except ConfigError as e:
        return [str(e)]
    errors = schema_errors(raw)
    if errors:
        return errors
    try:
        from ..validate import validate_spec

        validate_spec(config.Spec.parse(raw, bundle))
    except ConfigError as e:
        return [str(e).removeprefix("config.json: ")]
    return []


def cmd_validate(rt, args: list[str], flags: dict, g: dict) -> int:
    """CLI entry: one line per problem (``config.json: <field>: <message>``), exit 1; or ``config.json: valid``."""
    bundle = os.path.abspath(flags.get("bundle") or os.getcwd())
    errors = check_bundle(bundle)
    for e in errors:
        sys.stdout.write(f"config.json: {e}\n")
    sys.stdout.write(f"config.json: {len(errors)} problem(s)\n" if errors else "config.json: valid\n")
    return 1 if errors else 0

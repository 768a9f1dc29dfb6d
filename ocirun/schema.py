"""Validate config.json (and state, features, exec process, update resources) against ocirun's own schemas.

Why not ``jsonschema``: importing it costs ~75 ms, more than the rest of ``create``'s Python work, and
``create`` must validate everything before it touches the system. The schemas in ``spec/`` use a small
draft-04 subset, and this module implements exactly that subset:

    type  enum  properties  patternProperties  additionalProperties  required  dependencies
    items (one schema)  minItems  maxItems  minimum  maximum  minLength  maxLength  pattern
    allOf  anyOf  oneOf  not  $ref (local "#/..." and relative-file "defs.json#/...")

plus one annotation, ``errorMessage``: when anything inside a schema carrying it fails, the failures are
replaced by that single message (``{value}`` is replaced by the offending value). Standard validators
ignore unknown keywords, so verdicts stay identical to ``jsonschema.Draft4Validator`` on the same schema;
tests/unit/test_schema.py checks that on every fixture, and that no other keyword creeps into spec/.

Errors come in the order of the schema's keywords and properties, so the schemas list ``properties``
before ``required`` and ``ociVersion`` first: a refused version is the first thing ``check`` reports.
As in draft-04, a schema with ``$ref`` is replaced by its target (sibling keywords are ignored).
Integers are ``int`` only (not ``bool``, not ``1.0``), as draft-04 and Go's decoder see them.

Schemas are read once per process (with :mod:`ocirun.fastjson`, which does not import ``re``) and
resolved references are cached. The patterns every config meets (ociVersion, capabilities, paths, ...)
are checked by plain-Python matchers with re.search's exact verdict (:data:`_MATCHERS`), so ``re`` and
``json`` are imported only for a rare pattern (cpuset lists) or not at all.

Measured on the dev box (Python 3.11, 2 CPUs, bytecode cached): ``python -X importtime -c 'import
ocirun.schema'`` shows 0.3 ms for this module itself (2 ms cumulative, nearly all of it ``json``, which
config.py imports anyway; without a .pyc, as under PYTHONDONTWRITEBYTECODE=1, compiling it costs ~4.5 ms).
Validating ../shared/client-configs/podman-run-config.json (beside the repository) takes 0.43 ms warm, and 2.5 ms the first
time in a process (reading the four schema files and compiling the patterns included).
"""
import os

from .fastjson import dumps as _fast_dumps, loads as _loads


def _dumps(value, ensure_ascii: bool = True) -> str:
    """json.dumps's text for error messages, without importing json (≈1.5 ms, and ``re``): messages are
    also built for the failing branches of anyOf/oneOf while a valid config is checked."""
    return _fast_dumps(value, ensure_ascii=ensure_ascii)

#: The keywords implemented below; any other key in a schema is ignored (tests keep spec/ inside this set).
SUPPORTED = frozenset({
    "type", "enum", "properties", "patternProperties", "additionalProperties", "required", "dependencies",
    "items", "minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength", "pattern",
    "allOf", "anyOf", "oneOf", "not", "$ref",
})
#: Keys that carry no validation: documentation, draft markers, containers of definitions.
ANNOTATIONS = frozenset({"description", "$schema", "definitions", "errorMessage"})

#: Short names for what ocirun validates, as "<file>[#<json pointer>]" under SCHEMA_DIR.
ROOTS = {
    "config": "config-schema.json",
    "state": "state-schema.json",
    "features": "features-schema.json",
    "process": "defs.json#/definitions/Process",
    "resources": "defs-linux.json#/definitions/Resources",
}

_docs: dict = {}        # file name -> parsed schema document
_refs: dict = {}        # (base file, $ref) -> (schema, file it lives in)
_patterns: dict = {}    # pattern -> compiled regex
_schema_dir = None


def validate(instance, name="config"):
    """Return every error of ``instance`` against schema ``name`` as one-line messages naming the JSON path.

    ``name`` is a key of ROOTS or a reference such as ``"defs-linux.json#/definitions/Seccomp"``.
    """
    schema, base = _resolve(ROOTS.get(name, name), "")
    errors = []
    _check(schema, instance, None, base, errors)
    return [f"{_format_path(path)}: {message}" for path, message in errors]


def check(instance, name="config", source="config.json"):
    """Raise ConfigError with one line, ``<source>: <first error> (and N more)``, if ``instance`` is invalid."""
    errors = validate(instance, name)
    if errors:
        from .errors import ConfigError

        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {errors[0]}{more}")


# --- loading and references ------------------------------------------------------------------------

def schema_dir():
    """Directory of the schema files: the installed ``ocirun.spec`` package, else ``spec/`` beside ``ocirun/``."""
    global _schema_dir
    if _schema_dir is None:
        try:
            from .spec import SCHEMA_DIR
        except ImportError:  # an editable install that does not map ocirun.spec -> spec/
            SCHEMA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "spec")
        _schema_dir = SCHEMA_DIR
    return _schema_dir


def _document(filename):
    doc = _docs.get(filename)
    if doc is None:
        with open(os.path.join(schema_dir(), filename), encoding="utf-8") as f:
            doc = _docs[filename] = _loads(f.read())
    return doc


def _resolve(ref, base):
    """Resolve ``file#/json/pointer`` relative to the file ``base``; returns (schema, its file)."""
    key = (base, ref)
    hit = _refs.get(key)
    if hit is None:
        filename, _, pointer = ref.partition("#")
        filename = filename or base
        node = _document(filename)
        for part in pointer.split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
        hit = _refs[key] = (node, filename)
    return hit


# --- the validator ---------------------------------------------------------------------------------
# Paths are linked pairs (parent, key), None at the root: descending costs one small tuple, and the
# dotted form is built only for the errors actually reported. Errors are (path, message) pairs.

def _check(schema, inst, path, base, errors):
    """Validate ``inst`` against ``schema``, appending (path, message) pairs to ``errors``."""
    message = schema.get("errorMessage")
    if message is None:
        _check_keywords(schema, inst, path, base, errors)
        return
    inner = []
    _check_keywords(schema, inst, path, base, inner)
    if inner:
        errors.append((path, message.replace("{value}", _show(inst))))


def _check_keywords(schema, inst, path, base, errors):
    ref = schema.get("$ref")
    if ref is not None:
        target, target_base = _resolve(ref, base)
        _check(target, inst, path, target_base, errors)
        return
    expected = schema.get("type")
    if expected is not None and not _is_type(inst, expected):
        errors.append((path, f"{_show(inst)} is not of type {_type_names(expected)}"))
        return  # the other keywords would only repeat the same mistake
    for keyword, value in schema.items():
        rule = _RULES.get(keyword)
        if rule is not None:
            rule(value, schema, inst, path, base, errors)


_JSON_TYPE = {dict: "object", list: "array", str: "string", int: "integer", float: "number",
              bool: "boolean", type(None): "null"}


def _is_type(inst, expected):
    actual = _JSON_TYPE.get(type(inst))
    if isinstance(expected, str):
        return actual == expected or (expected == "number" and actual == "integer")
    return any(_is_type(inst, one) for one in expected)


def _type_names(expected):
    names = [expected] if isinstance(expected, str) else expected
    return " or ".join(f'"{name}"' for name in names)


def _is_number(inst):
    return type(inst) in (int, float)


# Each rule: (keyword value, whole schema, instance, path, base file, errors).

def _properties(props, schema, inst, path, base, errors):
    if type(inst) is dict:
        for key, sub in props.items():
            if key in inst:
                _check(sub, inst[key], (path, key), base, errors)


def _pattern_properties(patterns, schema, inst, path, base, errors):
    if type(inst) is dict:
        for key, value in inst.items():
            for pattern, sub in patterns.items():
                if _search(pattern, key):
                    _check(sub, value, (path, key), base, errors)


def _additional_properties(extra, schema, inst, path, base, errors):
    if type(inst) is not dict:
        return
    known = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    for key, value in inst.items():
        if key in known or any(_search(pattern, key) for pattern in patterns):
            continue
        if extra is False:
            errors.append(((path, key), "is not an allowed property"))
        elif extra is not True:
            _check(extra, value, (path, key), base, errors)


def _required(names, schema, inst, path, base, errors):
    if type(inst) is dict:
        for name in names:
            if name not in inst:
                errors.append(((path, name), "required property is missing"))


def _dependencies(deps, schema, inst, path, base, errors):
    if type(inst) is not dict:
        return
    for key, needs in deps.items():
        if key not in inst:
            continue
        if isinstance(needs, list):
            for name in needs:
                if name not in inst:
                    errors.append(((path, name), f"is required when {key} is set"))
        else:
            _check(needs, inst, path, base, errors)


def _items(sub, schema, inst, path, base, errors):
    if type(inst) is list:
        for index, item in enumerate(inst):
            _check(sub, item, (path, index), base, errors)


def _min_items(limit, schema, inst, path, base, errors):
    if type(inst) is list and len(inst) < limit:
        errors.append((path, f"{_show(inst)} has fewer than {_count(limit, 'item')}"))


def _max_items(limit, schema, inst, path, base, errors):
    if type(inst) is list and len(inst) > limit:
        errors.append((path, f"{_show(inst)} has more than {_count(limit, 'item')}"))


def _minimum(limit, schema, inst, path, base, errors):
    if _is_number(inst) and inst < limit:
        errors.append((path, f"{_show(inst)} is less than the minimum of {limit}"))


def _maximum(limit, schema, inst, path, base, errors):
    if _is_number(inst) and inst > limit:
        errors.append((path, f"{_show(inst)} is greater than the maximum of {limit}"))


def _min_length(limit, schema, inst, path, base, errors):
    if type(inst) is str and len(inst) < limit:
        errors.append((path, f"{_show(inst)} is shorter than {_count(limit, 'character')}"))


def _max_length(limit, schema, inst, path, base, errors):
    if type(inst) is str and len(inst) > limit:
        errors.append((path, f"{_show(inst)} is longer than {_count(limit, 'character')}"))


def _pattern(pattern, schema, inst, path, base, errors):
    if type(inst) is str and not _search(pattern, inst):
        errors.append((path, f"{_show(inst)} does not match {_dumps(pattern)}"))


def _enum(allowed, schema, inst, path, base, errors):
    if not any(_equal(inst, choice) for choice in allowed):
        errors.append((path, f"{_show(inst)} is not one of {_dumps(allowed)}"))


def _all_of(subs, schema, inst, path, base, errors):
    for sub in subs:
        _check(sub, inst, path, base, errors)


def _any_of(subs, schema, inst, path, base, errors):
    if not any(_passes(sub, inst, path, base) for sub in subs):
        errors.append((path, "does not match any of the allowed forms"))


def _one_of(subs, schema, inst, path, base, errors):
    matches = sum(1 for sub in subs if _passes(sub, inst, path, base))
    if matches != 1:
        errors.append((path, f"matches {matches} of the allowed forms instead of exactly one"))


def _not(sub, schema, inst, path, base, errors):
    if _passes(sub, inst, path, base):
        errors.append((path, f"{_show(inst)} is not allowed"))


_RULES = {
    "properties": _properties,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "required": _required,
    "dependencies": _dependencies,
    "items": _items,
    "minItems": _min_items,
    "maxItems": _max_items,
    "minimum": _minimum,
    "maximum": _maximum,
    "minLength": _min_length,
    "maxLength": _max_length,
    "pattern": _pattern,
    "enum": _enum,
    "allOf": _all_of,
    "anyOf": _any_of,
    "oneOf": _one_of,
    "not": _not,
}
assert set(_RULES) | {"type", "$ref"} == SUPPORTED


# --- helpers ---------------------------------------------------------------------------------------

def _passes(schema, inst, path, base):
    trial = []
    _check(schema, inst, path, base, trial)
    return not trial


def _search(pattern, text):
    """re.search with a per-process cache; JSON Schema patterns are unanchored, like re.search.

    The patterns of spec/ that every create meets have a plain-Python matcher (:data:`_MATCHERS`)
    with exactly re.search's verdict, so ``re`` (≈3.5 ms with ``enum``) is imported only for the
    others (cpuset lists)."""
    fast = _MATCHERS.get(pattern)
    if fast is not None:
        return fast(text)
    compiled = _patterns.get(pattern)
    if compiled is None:
        import re

        compiled = _patterns[pattern] = re.compile(pattern)
    return compiled.search(text) is not None


# --- plain matchers for spec/'s common patterns ----------------------------------------------------
# Python's ``$`` also matches before one final "\n", so an anchored pattern sees ``text`` minus one
# trailing newline.  tests/unit/test_schema_patterns.py checks every matcher against re.search.
_DIGITS = frozenset("0123456789")
_IDENT = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-")
_CAPCHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _chomp(text):
    return text[:-1] if text.endswith("\n") else text


def _number(text, i):
    """End of ``0|[1-9][0-9]*`` at ``i`` (the whole digit run), or -1."""
    j = i
    while j < len(text) and text[j] in _DIGITS:
        j += 1
    if j == i or (j - i > 1 and text[i] == "0"):
        return -1
    return j


def _idents(text):
    """``[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*`` over the whole of ``text``."""
    return all(part and all(c in _IDENT for c in part) for part in text.split("."))


def _semver_1x(text):
    s = _chomp(text)
    if not s.startswith("1."):
        return False
    i = _number(s, 2)
    if i < 0 or i >= len(s) or s[i] != ".":
        return False
    i = _number(s, i + 1)
    if i < 0:
        return False
    rest = s[i:]
    if rest.startswith("-"):
        pre, plus, build = rest[1:].partition("+")
        if not _idents(pre):
            return False
        return not plus or _idents(build)
    if rest.startswith("+"):
        return _idents(rest[1:])
    return not rest


def _path_component(text):
    if text in ("/", "/\n"):
        return True
    return bool(text) and "/" not in text and text not in (".", "..", ".\n", "..\n")


def _hugepage_size(text):
    s = _chomp(text)
    return (len(s) >= 3 and s[0] in "123456789" and all(c in _DIGITS for c in s[1:-2])
            and s[-2] in "KMG" and s[-1] == "B")


_MATCHERS = {
    "\\n": lambda t: "\n" in t,  # the regex \n: a newline anywhere
    "^/": lambda t: t.startswith("/"),
    "^MB:": lambda t: t.startswith("MB:"),
    "^$": lambda t: t in ("", "\n"),
    "^CAP_[A-Z0-9_]+$": lambda t: (lambda s: len(s) > 4 and s.startswith("CAP_")
                                  and all(c in _CAPCHARS for c in s[4:]))(_chomp(t)),
    "^[1-9][0-9]*[KMG]B$": _hugepage_size,
    "^(/|(?!\\.\\.?$)[^/]+)$": _path_component,
    "^1\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?"
    "(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$": _semver_1x,
}


def _equal(a, b):
    """JSON equality: true is not 1, 1 equals 1.0, containers compare element by element."""
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b


def _count(n, noun):
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _show(value, limit=60):
    """The value as JSON, cut to one short line."""
    text = _dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format_path(path):
    """(((None, 'linux'), 'namespaces'), 2) -> 'linux.namespaces[2]'; keys that are not names get ["..."]."""
    keys = []
    while path is not None:
        path, key = path
        keys.append(key)
    if not keys:
        return "(root)"
    out = []
    for key in reversed(keys):
        if isinstance(key, int):
            out.append(f"[{key}]")
        elif key.isidentifier():
            out.append(f".{key}" if out else key)
        else:
            out.append(f"[{_dumps(key, ensure_ascii=False)}]")
    return "".join(out)

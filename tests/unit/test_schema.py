"""ocirun.schema and spec/*.json: faithful to jsonschema, in line with the official schema, worded well.

Three claims are checked here:

1. The mini validator is faithful: on every fixture (ours, the official ones, real engine configs and a few
   hundred deterministic mutations of them) its verdict equals jsonschema's Draft4Validator run on OUR schema.
2. Our schema agrees with the official runtime-spec schema on the official fixtures and the engine configs,
   except for the differences listed in DIFFERENCES, each with its reason.
3. The messages are one line, name the JSON path, and say what is wrong (spec/fixtures/bad/ has one file per
   mistake, EXPECTED_ERRORS the words we promise).

The official schema and client configs live in the shared folder beside the repository; the tests that need
them skip cleanly without it. jsonschema is used only here, never by ocirun.schema.
"""
import copy
import functools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from ocirun import schema
from ocirun.errors import ConfigError

SPEC_DIR = Path(schema.schema_dir())  # the schemas ocirun.schema reads
FIXTURES = Path(__file__).resolve().parents[2] / "spec" / "fixtures"  # test data, not installed
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "runtime-spec"
OFFICIAL_DIR = SHARED / "schema"
OFFICIAL_TESTS = OFFICIAL_DIR / "test"
CLIENT_CONFIGS = SHARED.parent / "client-configs"

#: Where each kind of document starts in the official schema (ours: schema.ROOTS).
OFFICIAL_ROOTS = {
    "config": "config-schema.json",
    "state": "state-schema.json",
    "features": "features-schema.json",
    "process": "config-schema.json#/properties/process",
    "resources": "config-linux.json#/linux/properties/resources",
}

#: Official fixtures / engine configs on which our verdict differs on purpose, with the reason.
DIFFERENCES = {
    "config/good/spec-example.json":
        "ociVersion 0.5.0-dev: ocirun runs 1.x only; the official schema accepts any string",
    "config/good/zos-example.json":
        "ociVersion 0.5.0-dev: ocirun runs 1.x only; the official schema accepts any string",
    "state/good/spec-example.json":
        "ociVersion 0.2.0: ocirun runs 1.x only; the official schema accepts any string",
    "config/bad/freebsd-vnet-disable.json":
        "ocirun is a Linux runtime: a freebsd section is accepted as an object and not interpreted",
}
#: The same, once ociVersion is set to 1.3.0 everywhere: only the platform difference remains.
DIFFERENCES_AT_1_3 = {"config/bad/freebsd-vnet-disable.json"}

#: spec/fixtures/bad/<file>: the words its single error must contain.
EXPECTED_ERRORS = {
    'config-version-2.json': 'ociVersion: "2.0.0" is not a supported version',
    'config-version-0.9.json': 'ociVersion: "0.9" is not a supported version',
    'config-missing-ociVersion.json': 'ociVersion: required property is missing',
    'config-missing-root.json': 'root: required property is missing',
    'config-root-path-number.json': 'root.path: 5 is not of type "string"',
    'config-root-readonly-string.json': 'root.readonly: "yes" is not of type "boolean"',
    'config-mount-missing-destination.json': 'mounts[1].destination: required property is missing',
    'config-mount-uidmappings-alone.json': 'mounts[0].gidMappings: is required when uidMappings is set',
    'config-mount-options-number.json': 'mounts[1].options[0]: 1 is not of type "string"',
    'config-process-missing-cwd.json': 'process.cwd: required property is missing',
    'config-process-relative-cwd.json': 'process.cwd: "tmp" is not an absolute path',
    'config-process-empty-args.json': 'process.args: [] has fewer than 1 item',
    'config-process-negative-uid.json': 'process.user.uid: -1 is less than the minimum of 0',
    'config-process-user-missing-gid.json': 'process.user.gid: required property is missing',
    'config-process-additionalGids-string.json': 'process.user.additionalGids[1]: "wheel" is not of type "integer"',
    'config-process-umask-float.json': 'process.user.umask: 18.0 is not of type "integer"',
    'config-process-rlimit-unknown.json': 'process.rlimits[0].type: "RLIMIT_FOO" is not one of',
    'config-process-rlimit-missing-soft.json': 'process.rlimits[0].soft: required property is missing',
    'config-process-rlimit-hard-too-big.json': 'process.rlimits[0].hard: 18446744073709551616 is greater than the maximum',
    'config-process-consolesize-negative.json': 'process.consoleSize.width: -80 is less than the minimum of 0',
    'config-process-consolesize-missing-height.json': 'process.consoleSize.height: required property is missing',
    'config-process-ioPriority-out-of-range.json': 'process.ioPriority.priority: 8 is greater than the maximum of 7',
    'config-process-ioPriority-bad-class.json': 'process.ioPriority.class: "IOPRIO_CLASS_NONE" is not one of',
    'config-process-scheduler-bad-policy.json': 'process.scheduler.policy: "SCHED_FAST" is not one of',
    'config-process-scheduler-bad-flag.json': 'process.scheduler.flags[0]: "SCHED_FLAG_TURBO" is not one of',
    'config-process-scheduler-nice-too-big.json': 'process.scheduler.nice: 2147483648 is greater than the maximum',
    'config-process-execCPUAffinity-bad.json': 'process.execCPUAffinity.final: "0-3;7" is not a list such as',
    'config-process-oomScoreAdj-too-big.json': 'process.oomScoreAdj: 1001 is greater than the maximum of 1000',
    'config-process-capabilities-not-array.json': 'process.capabilities.bounding: "CAP_KILL" is not of type "array"',
    'config-process-terminal-string.json': 'process.terminal: "true" is not of type "boolean"',
    'config-process-noNewPrivileges-number.json': 'process.noNewPrivileges: 1 is not of type "boolean"',
    'config-process-env-not-strings.json': 'process.env[0]: {"A": "b"} is not of type "string"',
    'config-hostname-number.json': 'hostname: 42 is not of type "string"',
    'config-domainname-array.json': 'domainname: ["a"] is not of type "string"',
    'config-hook-relative-path.json': 'hooks.prestart[0].path: "bin/hook" is not an absolute path',
    'config-hook-zero-timeout.json': 'hooks.poststop[0].timeout: 0 is less than the minimum of 1',
    'config-hook-missing-path.json': 'hooks.createRuntime[0].path: required property is missing',
    'config-hook-phase-not-array.json': 'hooks.startContainer: {"path": "/bin/true"} is not of type "array"',
    'config-hook-createContainer-args.json': 'hooks.createContainer[0].args: "x" is not of type "array"',
    'config-hook-poststart-env.json': 'hooks.poststart[0].env[0]: 1 is not of type "string"',
    'config-annotation-value-number.json': 'annotations["com.example.gpu-cores"]: 2 is not of type "string"',
    'config-annotation-empty-key.json': 'annotations[""]: annotation keys must not be empty',
    'config-linux-not-object.json': 'linux: [] is not of type "object"',
    'config-linux-namespace-unknown.json': 'linux.namespaces[2].type: "foo" is not one of ["cgroup", "ipc",',
    'config-linux-namespace-relative-path.json': 'linux.namespaces[1].path: "proc/1/ns/net" is not an absolute path',
    'config-linux-namespace-missing-type.json': 'linux.namespaces[0].type: required property is missing',
    'config-linux-uidMappings-missing-size.json': 'linux.uidMappings[0].size: required property is missing',
    'config-linux-gidMappings-hostID-too-big.json': 'linux.gidMappings[0].hostID: 4294967296 is greater than the maximum',
    'config-linux-timeOffsets-unknown-clock.json': 'linux.timeOffsets.realtime: is not a clock a time namespace can offset',
    'config-linux-timeOffsets-negative-nanosecs.json': 'linux.timeOffsets.monotonic.nanosecs: -1 is less than the minimum of 0',
    'config-linux-device-bad-type.json': 'linux.devices[0].type: "x" is not one of ["b", "c", "p", "u"]',
    'config-linux-device-missing-major.json': 'linux.devices[0]: major and minor are required unless type is "p"',
    'config-linux-device-relative-path.json': 'linux.devices[0].path: "dev/fuse" is not an absolute path',
    'config-linux-device-negative-filemode.json': 'linux.devices[0].fileMode: -1 is less than the minimum of 0',
    'config-linux-netDevices-name-number.json': 'linux.netDevices.eth0.name: 23 is not of type "string"',
    'config-linux-memory-limit-below-unlimited.json': 'linux.resources.memory.limit: -2 is less than the minimum of -1',
    'config-linux-memory-swappiness.json': 'linux.resources.memory.swappiness: 101 is greater than the maximum of 100',
    'config-linux-memory-oomkiller-string.json': 'linux.resources.memory.disableOOMKiller: "true" is not of type "boolean"',
    'config-linux-cpu-shares-negative.json': 'linux.resources.cpu.shares: -1 is less than the minimum of 0',
    'config-linux-cpu-burst-negative.json': 'linux.resources.cpu.burst: -5 is less than the minimum of 0',
    'config-linux-cpu-cpus-bad.json': 'linux.resources.cpu.cpus: "0-3;7" is not a list such as',
    'config-linux-cpu-idle-string.json': 'linux.resources.cpu.idle: "1" is not of type "integer"',
    'config-linux-pids-limit-string.json': 'linux.resources.pids.limit: "max" is not of type "integer"',
    'config-linux-blockio-weight-too-big.json': 'linux.resources.blockIO.weight: 70000 is greater than the maximum of 65535',
    'config-linux-blockio-weightDevice-no-weight.json': 'linux.resources.blockIO.weightDevice[0]: at least one of weight and leafWeight is required',
    'config-linux-blockio-throttle-missing-rate.json': 'linux.resources.blockIO.throttleReadBpsDevice[0].rate: required property is missing',
    'config-linux-blockio-throttle-missing-minor.json': 'linux.resources.blockIO.throttleWriteIOPSDevice[0].minor: required property is missing',
    'config-linux-hugepage-bad-size.json': 'linux.resources.hugepageLimits[0].pageSize: "64kB" is not a page size',
    'config-linux-hugepage-missing-limit.json': 'linux.resources.hugepageLimits[0].limit: required property is missing',
    'config-linux-network-priority-missing-name.json': 'linux.resources.network.priorities[0].name: required property is missing',
    'config-linux-network-classid-negative.json': 'linux.resources.network.classID: -1 is less than the minimum of 0',
    'config-linux-rdma-empty-entry.json': 'linux.resources.rdma.mlx5_1: at least one of hcaHandles and hcaObjects is required',
    'config-linux-rdma-string.json': 'linux.resources.rdma.mlx5_1.hcaHandles: "3" is not of type "integer"',
    'config-linux-unified-number.json': 'linux.resources.unified["memory.max"]: 1024 is not of type "string"',
    'config-linux-device-cgroup-bad-access.json': 'linux.resources.devices[0].access: device access cannot be empty',
    'config-linux-device-cgroup-missing-allow.json': 'linux.resources.devices[0].allow: required property is missing',
    'config-linux-device-cgroup-bad-type.json': 'linux.resources.devices[0].type: "p" is not one of ["a", "b", "c"]',
    'config-linux-cgroupsPath-number.json': 'linux.cgroupsPath: 7 is not of type "string"',
    'config-linux-intelRdt-membw.json': 'linux.intelRdt.memBwSchema: "L3:0=ff" does not start with "MB:"',
    'config-linux-intelRdt-closid-traversal.json': 'linux.intelRdt.closID: ".." is not "/" or a single directory name',
    'config-linux-intelRdt-schemata-newline.json': 'linux.intelRdt.schemata[1]: "MB:0=20\\n" contains a newline',
    'config-linux-memoryPolicy-bad-mode.json': 'linux.memoryPolicy.mode: "MPOL_FAST" is not one of',
    'config-linux-memoryPolicy-missing-mode.json': 'linux.memoryPolicy.mode: required property is missing',
    'config-linux-memoryPolicy-bad-flag.json': 'linux.memoryPolicy.flags[0]: "MPOL_F_NOPE" is not one of',
    'config-linux-sysctl-number.json': 'linux.sysctl["net.ipv4.ip_forward"]: 1 is not of type "string"',
    'config-linux-seccomp-missing-default.json': 'linux.seccomp.defaultAction: required property is missing',
    'config-linux-seccomp-bad-action.json': 'linux.seccomp.syscalls[0].action: "SCMP_ACT_MAYBE" is not one of',
    'config-linux-seccomp-bad-arch.json': 'linux.seccomp.architectures[0]: "SCMP_ARCH_Z80" is not one of',
    'config-linux-seccomp-bad-flag.json': 'linux.seccomp.flags[0]: "SECCOMP_FILTER_FLAG_FAST" is not one of',
    'config-linux-seccomp-bad-operator.json': 'linux.seccomp.syscalls[0].args[0].op: "SCMP_CMP_LIKE" is not one of',
    'config-linux-seccomp-arg-index-6.json': 'linux.seccomp.syscalls[0].args[0].index: 6 is greater than the maximum of 5',
    'config-linux-seccomp-arg-missing-value.json': 'linux.seccomp.syscalls[0].args[0].value: required property is missing',
    'config-linux-seccomp-empty-names.json': 'linux.seccomp.syscalls[0].names: [] has fewer than 1 item',
    'config-linux-seccomp-metadata-without-listener.json': 'linux.seccomp.listenerPath: is required when listenerMetadata is set',
    'config-linux-seccomp-errnoRet-negative.json': 'linux.seccomp.syscalls[0].errnoRet: -1 is less than the minimum of 0',
    'config-linux-rootfsPropagation-bad.json': 'linux.rootfsPropagation: "bogus" is not one of ["private", "shared", "slave", "unbindable", "rprivate", "rshared", "rslave", "runbindable"]',
    'config-linux-maskedPaths-relative.json': 'linux.maskedPaths[0]: "proc/kcore" is not an absolute path',
    'config-linux-readonlyPaths-not-array.json': 'linux.readonlyPaths: "/proc/sys" is not of type "array"',
    'config-linux-mountLabel-number.json': 'linux.mountLabel: 1 is not of type "string"',
    'config-linux-personality-bad-domain.json': 'linux.personality.domain: "BSD" is not one of ["LINUX", "LINUX32"]',
    'config-linux-personality-flags.json': 'linux.personality.flags: ["ADDR_NO_RANDOMIZE"] has more than 0 items',
    'config-windows-not-object.json': 'windows: "yes" is not of type "object"',
    'process-missing-args.json': 'args: required property is missing',
    'process-relative-cwd.json': 'cwd: "home" is not an absolute path',
    'resources-memory-string.json': 'memory.limit: "128m" is not of type "integer"',
    'resources-pids-below-unlimited.json': 'pids.limit: -2 is less than the minimum of -1',
    'state-running-without-pid.json': 'pid is required when status is "created" or "running"',
    'state-relative-bundle.json': 'bundle: "containers/redis" is not an absolute path',
    'state-version-2.json': 'ociVersion: "2.1.0" is not a supported version',
    'state-empty-status.json': 'status: "" is shorter than 1 character',
    'features-missing-ociVersionMax.json': 'ociVersionMax: required property is missing',
    'features-bad-namespace.json': 'linux.namespaces[0]: "container" is not one of',
    'features-bad-capability.json': 'linux.capabilities[0]: "chown" is not a capability name',
}


# --- helpers -------------------------------------------------------------------------------------------

def _load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _kind_of_fixture(name):
    """spec/fixtures/*/<kind>-<what>.json -> kind (config, process, resources, state, features)."""
    return name.split("-", 1)[0]


def _kind_of_client_config(name):
    if name.endswith("-process.json"):
        return "process"
    if name.endswith("-resources.json"):
        return "resources"
    return "config"


def _need(directory):
    if not directory.is_dir():
        pytest.skip(f"{directory} is not there (the shared folder sits beside the repository)")


@functools.lru_cache(maxsize=None)
def _registry(directory):
    """A referencing registry holding every schema file of ``directory`` under its file name."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    resources = [
        (path.name, Resource.from_contents(_load(path), default_specification=DRAFT4))
        for path in sorted(Path(directory).glob("*.json"))
    ]
    return Registry().with_resources(resources)


def _jsonschema_valid(directory, ref, instance):
    """jsonschema's Draft4 verdict for ``instance`` against ``ref`` (e.g. "defs.json#/definitions/Process")."""
    from jsonschema import Draft4Validator

    return Draft4Validator({"$ref": ref}, registry=_registry(str(directory))).is_valid(instance)


def _ours_valid(instance, kind):
    return not schema.validate(instance, kind)


def _our_fixtures():
    for verdict in ("good", "bad"):
        for path in sorted((FIXTURES / verdict).glob("*.json")):
            yield pytest.param(_kind_of_fixture(path.name), path, id=f"{verdict}/{path.name}")


def _official_cases():
    """(kind, path, label) for the official fixtures that parse, and for the engine configs."""
    cases = []
    if OFFICIAL_TESTS.is_dir():
        for path in sorted(OFFICIAL_TESTS.glob("*/*/*.json")):
            kind = path.parent.parent.name
            label = str(path.relative_to(OFFICIAL_TESTS))
            try:
                _load(path)
            except ValueError:
                continue  # invalid-json.json: refused by the JSON reader before any schema (see below)
            cases.append((kind, path, label))
    if CLIENT_CONFIGS.is_dir():
        for path in sorted(CLIENT_CONFIGS.glob("*.json")):
            cases.append((_kind_of_client_config(path.name), path, f"client-configs/{path.name}"))
    return cases


OFFICIAL_CASES = [pytest.param(*case, id=case[2]) for case in _official_cases()]


# --- 1. the mini validator is faithful to jsonschema on our schema --------------------------------------

@pytest.mark.parametrize("kind,path", list(_our_fixtures()))
def test_faithful_on_our_fixtures(kind, path):
    instance = _load(path)
    assert _ours_valid(instance, kind) == _jsonschema_valid(SPEC_DIR, schema.ROOTS[kind], instance)


@pytest.mark.parametrize("kind,path,label", OFFICIAL_CASES)
def test_faithful_on_official_fixtures_and_engine_configs(kind, path, label):
    instance = _load(path)
    assert _ours_valid(instance, kind) == _jsonschema_valid(SPEC_DIR, schema.ROOTS[kind], instance)


_ODD_VALUES = [None, True, False, 0, -1, 1, 7, 8, 1.5, 2.0, 65536, 2**32, 2**63, 2**64, -(2**63) - 1,
               "", "x", "/abs", "rel", "a\n", "0-3,7", "MB:1", "2MB", "SCMP_ACT_ALLOW", "p", "rwm",
               [], ["x"], [1], {}, {"a": 1}]


def _leaf_paths(node, prefix=()):
    """Every path into ``node`` (containers and scalars), for mutation."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaf_paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaf_paths(value, prefix + (index,))


def _mutations(instance, count, seed):
    """``count`` deterministic variants: one value replaced by an odd value, or one key/item removed."""
    rng = random.Random(seed)
    paths = [p for p in _leaf_paths(instance) if p]
    for _ in range(count):
        variant = copy.deepcopy(instance)
        path = rng.choice(paths)
        parent = variant
        for key in path[:-1]:
            parent = parent[key]
        if rng.random() < 0.2:
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(_ODD_VALUES))
        yield path, variant


def _mutation_sources():
    sources = [("config", FIXTURES / "good" / "config-full-linux.json"),
               ("config", FIXTURES / "good" / "config-base.json"),
               ("state", FIXTURES / "good" / "state-running.json"),
               ("features", FIXTURES / "good" / "features-ocirun-like.json")]
    if CLIENT_CONFIGS.is_dir():
        sources += [(_kind_of_client_config(p.name), p) for p in sorted(CLIENT_CONFIGS.glob("*.json"))]
    return sources


@pytest.mark.parametrize("kind,path", [pytest.param(k, p, id=p.name) for k, p in _mutation_sources()])
def test_faithful_on_mutations(kind, path):
    """A few hundred one-edit variants of good documents: both validators must always agree."""
    mismatches = []
    for edited, variant in _mutations(_load(path), count=60, seed=path.name):
        ours = _ours_valid(variant, kind)
        if ours != _jsonschema_valid(SPEC_DIR, schema.ROOTS[kind], variant):
            mismatches.append((edited, ours, schema.validate(variant, kind)))
    assert mismatches == []


# --- 2. our schema agrees with the official one ------------------------------------------------------------

def _official_verdicts(kind, path, label, instance):
    _need(OFFICIAL_DIR)
    return _ours_valid(instance, kind), _jsonschema_valid(OFFICIAL_DIR, OFFICIAL_ROOTS[kind], instance)


@pytest.mark.parametrize("kind,path,label", [c for c in OFFICIAL_CASES if not c.id.startswith("client-configs/")])
def test_official_fixtures_sorted_as_their_folder_says(kind, path, label):
    """Sanity check of the harness: the official schema passes its good fixtures and fails its bad ones."""
    _, theirs = _official_verdicts(kind, path, label, _load(path))
    assert theirs == (path.parent.name == "good")


@pytest.mark.parametrize("kind,path,label", OFFICIAL_CASES)
def test_same_verdict_as_official_schema(kind, path, label):
    ours, theirs = _official_verdicts(kind, path, label, _load(path))
    if label in DIFFERENCES:
        assert ours != theirs, f"listed as a difference ({DIFFERENCES[label]}) but both now agree"
    else:
        assert ours == theirs, schema.validate(_load(path), kind)


@pytest.mark.parametrize("kind,path,label", OFFICIAL_CASES)
def test_same_verdict_as_official_schema_at_version_1_3(kind, path, label):
    """With ociVersion set to 1.3.0, only the platform difference remains: every other rule agrees."""
    instance = _load(path)
    for key in ("ociVersion", "ociVersionMin", "ociVersionMax"):
        if key in instance:
            instance[key] = "1.3.0"
    ours, theirs = _official_verdicts(kind, path, label, instance)
    if label in DIFFERENCES_AT_1_3:
        assert ours != theirs
    else:
        assert ours == theirs, schema.validate(instance, kind)


def test_every_listed_difference_is_a_real_case():
    _need(OFFICIAL_DIR)
    labels = {case[2] for case in _official_cases()}
    assert set(DIFFERENCES) <= labels and DIFFERENCES_AT_1_3 <= set(DIFFERENCES)


def test_unparsable_official_fixtures_are_bad_ones():
    """invalid-json.json is refused by the JSON reader, before any schema; it is filed under bad/."""
    _need(OFFICIAL_TESTS)
    for path in OFFICIAL_TESTS.glob("*/*/*.json"):
        try:
            _load(path)
        except ValueError:
            assert path.parent.name == "bad", path


# --- coverage of the spec: every field the official schema knows, we know --------------------------------

def _resolve_in(directory, ref, base):
    filename, _, pointer = ref.partition("#")
    node = _load(Path(directory) / (filename or base))
    for part in pointer.split("/")[1:]:
        node = node[part]
    return node, filename or base


def _property_paths(directory, ref, skip=()):
    """Dotted paths of every property a schema defines: "[]" for array items, "*" for map values."""
    paths = set()

    def walk(node, base, prefix, depth):
        if depth > 40:
            return
        if "$ref" in node:
            target, target_base = _resolve_in(directory, node["$ref"], base)
            walk(target, target_base, prefix, depth + 1)
            return
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(key, []):
                walk(sub, base, prefix, depth + 1)
        for name, sub in node.get("properties", {}).items():
            path = f"{prefix}.{name}" if prefix else name
            if path.split(".")[0] in skip:
                continue
            paths.add(path)
            walk(sub, base, path, depth + 1)
        if isinstance(node.get("items"), dict):
            walk(node["items"], base, prefix + "[]", depth + 1)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], base, prefix + ".*", depth + 1)
        for sub in node.get("patternProperties", {}).values():
            walk(sub, base, prefix + ".*", depth + 1)

    root, base = _resolve_in(directory, ref, ref.partition("#")[0])
    walk(root, base, "", 0)
    return paths


_OTHER_PLATFORMS = ("freebsd", "solaris", "vm", "windows", "zos")


@pytest.mark.parametrize("kind", ["config", "state", "features", "process", "resources"])
def test_we_define_every_field_the_official_schema_defines(kind):
    _need(OFFICIAL_DIR)
    theirs = _property_paths(OFFICIAL_DIR, OFFICIAL_ROOTS[kind], skip=_OTHER_PLATFORMS)
    ours = _property_paths(SPEC_DIR, schema.ROOTS[kind], skip=_OTHER_PLATFORMS)
    assert theirs - ours == set()


def _present(instance, parts):
    if not parts:
        return True
    head, rest = parts[0], parts[1:]
    if head == "[]":
        return isinstance(instance, list) and any(_present(item, rest) for item in instance)
    if not isinstance(instance, dict):
        return False
    if head == "*":
        return any(_present(value, rest) for value in instance.values())
    return head in instance and _present(instance[head], rest)


def test_full_fixture_exercises_every_field_of_our_config_schema():
    """spec/fixtures/good/config-full-linux.json sets every Linux field of config.md and config-linux.md."""
    full = _load(FIXTURES / "good" / "config-full-linux.json")
    not_linux = {"process.user.username"}  # Windows only
    missing = [
        path for path in sorted(_property_paths(SPEC_DIR, schema.ROOTS["config"], skip=_OTHER_PLATFORMS))
        if path not in not_linux and not _present(full, path.replace("[]", ".[]").split("."))
    ]
    assert missing == []


# --- 3. our fixtures and the words of the errors -------------------------------------------------------------

def test_every_bad_fixture_has_expected_words_and_back():
    assert sorted(p.name for p in (FIXTURES / "bad").glob("*.json")) == sorted(EXPECTED_ERRORS)
    assert len(EXPECTED_ERRORS) >= 30


@pytest.mark.parametrize("path", sorted((FIXTURES / "good").glob("*.json")), ids=lambda p: p.name)
def test_good_fixture_is_valid(path):
    assert schema.validate(_load(path), _kind_of_fixture(path.name)) == []


@pytest.mark.parametrize("path", sorted((FIXTURES / "bad").glob("*.json")), ids=lambda p: p.name)
def test_bad_fixture_reports_the_field(path):
    errors = schema.validate(_load(path), _kind_of_fixture(path.name))
    assert len(errors) == 1, errors  # each bad fixture holds exactly one mistake
    assert EXPECTED_ERRORS[path.name] in errors[0]


ACCEPTED_VERSIONS = ["1.0.0", "1.3.0", "1.0.2-dev", "1.1.0-rc.2", "1.0.0-rc1", "1.2.0+dev", "1.0.0-rc.1+dev",
                     "1.0.0-rc5+dev.20240101", "1.10.100"]
REFUSED_VERSIONS = ["2.0.0", "2.0.0-rc1", "0.9", "0.9.0", "0.5.0-dev", "1.0", "1", "v1.0.0", "1.0.0\n", " 1.0.0",
                    "01.0.0", "1.01.0", "1.0.0-", "1.0.0+", "10.0.0", "", "latest"]


@pytest.mark.parametrize("version", ACCEPTED_VERSIONS)
def test_version_gate_accepts_every_1x(version):
    assert schema.validate({"ociVersion": version, "root": {"path": "rootfs"}}) == []


@pytest.mark.parametrize("version", REFUSED_VERSIONS)
def test_version_gate_refuses_other_majors_and_non_semver(version):
    errors = schema.validate({"ociVersion": version, "root": {"path": "rootfs"}})
    assert errors == [f"ociVersion: {json.dumps(version)} is not a supported version (ocirun runs 1.x)"]


@pytest.mark.parametrize("value", [1, 1.0, None, ["1.0.0"]])
def test_version_gate_refuses_non_strings(value):
    errors = schema.validate({"ociVersion": value, "root": {"path": "rootfs"}})
    assert errors == [f"ociVersion: {json.dumps(value)} is not a supported version (ocirun runs 1.x)"]


@pytest.mark.parametrize("kind", ["state", "features"])
def test_version_gate_applies_to_state_and_features(kind):
    doc = _load(FIXTURES / "good" / {"state": "state-running.json", "features": "features-ocirun-like.json"}[kind])
    key = "ociVersion" if kind == "state" else "ociVersionMax"
    doc[key] = "2.0.0"
    assert schema.validate(doc, kind) == [f'{key}: "2.0.0" is not a supported version (ocirun runs 1.x)']


def test_every_message_is_one_line_and_starts_with_the_path():
    bad = {"ociVersion": "1.0.0", "root": {"path": "r"},
           "process": {"cwd": "/", "args": ["a\nb"], "env": ["X=\n"], "user": {"uid": "root", "gid": 0}},
           "annotations": {"a\nb": 3}, "linux": {"sysctl": {"kernel.x\n": 1}}}
    errors = schema.validate(bad)
    assert len(errors) == 3
    for message in errors:
        assert "\n" not in message
    assert errors[0] == 'process.user.uid: "root" is not of type "integer"'
    assert errors[1] == 'annotations["a\\nb"]: 3 is not of type "string"'
    assert errors[2] == 'linux.sysctl["kernel.x\\n"]: 1 is not of type "string"'


def test_root_errors_and_long_values():
    assert schema.validate([], "config") == ['(root): [] is not of type "object"']
    long_cwd = "x" * 200
    [message] = schema.validate({"ociVersion": "1.0.0", "root": {"path": "r"},
                                 "process": {"cwd": long_cwd, "args": ["sh"]}})
    assert message.startswith('process.cwd: "xxx') and "..." in message and len(message) < 120


def test_check_raises_one_line_config_error_with_source_and_count():
    with pytest.raises(ConfigError) as caught:
        schema.check({"ociVersion": "2.0.0", "process": {"cwd": "/", "args": []}}, "config", source="config.json")
    text = str(caught.value)
    assert text == 'config.json: ociVersion: "2.0.0" is not a supported version (ocirun runs 1.x) (and 2 more)'
    with pytest.raises(ConfigError, match=r"^p\.json: args: required property is missing$"):
        schema.check({"cwd": "/"}, "process", source="p.json")
    schema.check(_load(FIXTURES / "good" / "config-base.json"))  # no error, no return value


def test_unknown_properties_are_ignored_as_the_spec_requires():
    doc = _load(FIXTURES / "good" / "config-base.json")
    doc["x-engine"] = {"anything": [1, 2]}
    doc["process"]["futureField"] = 1
    doc["linux"]["resources"] = {"memory": {"futureKnob": True}}
    assert schema.validate(doc) == []


def test_other_platform_sections_do_not_break_validation():
    doc = _load(FIXTURES / "good" / "config-base.json")
    doc.update(windows={"layerFolders": ["C:\\\\l"], "network": {"allowUnqualifiedDNSQuery": True}},
               solaris={"anet": []}, vm={"kernel": {"path": "/k"}}, zos={}, freebsd={"jail": {"vnet": "new"}})
    assert schema.validate(doc) == []


def test_validate_accepts_a_reference_as_name():
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW"}]}
    assert schema.validate(seccomp, "defs-linux.json#/definitions/Seccomp") == []
    assert schema.validate({}, "defs-linux.json#/definitions/Seccomp") == [
        "defaultAction: required property is missing"]


# --- the schema files themselves ----------------------------------------------------------------------------

def _schema_files():
    return sorted(SPEC_DIR.glob("*.json"))


def _walk_schemas(node, base, visit):
    """Call visit(schema, base) on every subschema of a schema document (not on maps of names)."""
    if not isinstance(node, dict):
        return
    visit(node, base)
    for key, value in node.items():
        if key in ("properties", "patternProperties", "definitions"):
            for sub in value.values():
                _walk_schemas(sub, base, visit)
        elif key == "dependencies":
            for sub in value.values():
                if isinstance(sub, dict):
                    _walk_schemas(sub, base, visit)
        elif key in ("allOf", "anyOf", "oneOf"):
            for sub in value:
                _walk_schemas(sub, base, visit)
        elif key in ("items", "additionalProperties", "not"):
            _walk_schemas(value, base, visit)


@pytest.mark.parametrize("path", _schema_files(), ids=lambda p: p.name)
def test_schema_uses_only_what_the_mini_validator_implements(path):
    used = set()
    _walk_schemas(_load(path), path.name, lambda node, base: used.update(node))
    assert used - schema.SUPPORTED - schema.ANNOTATIONS == set()


@pytest.mark.parametrize("path", _schema_files(), ids=lambda p: p.name)
def test_schema_refs_resolve_and_stand_alone(path):
    refs = []
    _walk_schemas(_load(path), path.name, lambda node, base: "$ref" in node and refs.append((node, base)))
    for node, base in refs:
        assert set(node) == {"$ref"}, f"draft-04 ignores keywords beside $ref: {node}"
        schema._resolve(node["$ref"], base)


@pytest.mark.parametrize("path", _schema_files(), ids=lambda p: p.name)
def test_schema_is_a_valid_draft4_schema(path):
    from jsonschema import Draft4Validator

    Draft4Validator.check_schema(_load(path))


def test_hot_path_does_not_import_jsonschema():
    code = (
        "import json, sys, ocirun.schema as s;"
        f"s.check(json.load(open({str(FIXTURES / 'good' / 'config-full-linux.json')!r})));"
        "bad = [m for m in ('jsonschema', 'referencing') if m in sys.modules];"
        "sys.exit(str(bad) if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

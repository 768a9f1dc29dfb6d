"""`ocirun validate`: the reference validator (jsonschema) lists every problem at once; create's own
validator stops at the first.  Both read the same spec/ schemas."""
import json

from ocirun import cli
from ocirun.specgen import default_spec


def _bundle(tmp_path, edit=None):
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    spec = default_spec(args=["sh"], terminal=False)
    spec["root"] = {"path": str(tmp_path / "rootfs")}
    if edit:
        edit(spec)
    (tmp_path / "config.json").write_text(json.dumps(spec))
    return str(tmp_path)


def _run(capsys, bundle):
    code = cli.run_cli(["--root", bundle + "/state", "validate", "--bundle", bundle])
    return code, capsys.readouterr().out.splitlines()


def test_valid(capsys, tmp_path):
    assert _run(capsys, _bundle(tmp_path)) == (0, ["config.json: valid"])


def test_every_schema_error_at_once(capsys, tmp_path):
    def edit(s):
        s["hostname"] = 5
        s["process"]["user"]["uid"] = "x"
        s["linux"]["namespaces"].append({"type": "bogus"})

    code, out = _run(capsys, _bundle(tmp_path, edit))
    assert code == 1
    assert out[-1] == "config.json: 3 problem(s)"
    assert any(line.startswith("config.json: hostname: 5 is not of type") for line in out)
    assert any(line.startswith("config.json: process.user.uid: 'x' is not of type") for line in out)
    assert any("linux.namespaces[5].type: 'bogus' is not one of" in line for line in out)


def test_semantic_checks_after_the_schema(capsys, tmp_path):
    def edit(s):
        s["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]

    assert _run(capsys, _bundle(tmp_path, edit)) == (
        1, ["config.json: process.rlimits[0]: soft limit 10 exceeds hard limit 5", "config.json: 1 problem(s)"])


def test_agrees_with_create_on_what_is_refused(tmp_path):
    """Whatever validate refuses, create's fast validator refuses (it names the first problem)."""
    from ocirun import config
    from ocirun.commands.validate import check_bundle
    from ocirun.errors import ConfigError

    import pytest

    bundle = _bundle(tmp_path, lambda s: s["process"].update(cwd="relative"))
    assert check_bundle(bundle)
    with pytest.raises(ConfigError):
        config.load(bundle)

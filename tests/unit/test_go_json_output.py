"""JSON that runc writes with Go's encoder, written the same way: compact, UTC as "Z", null for no containers.

runc 1.1.5 here: `runc --log L --log-format json state nope` appends
{"level":"error","msg":"container does not exist","time":"2026-12-07T06:34:58Z"} to L, and
`runc --root EMPTY list --format json` prints `null`.
"""
import json
import os

from ocirun import cli, fastjson
from ocirun.log import Logger


def test_compact_has_no_spaces_and_round_trips():
    obj = {"a": [1, 2, {"b": None}], "c": "x y"}
    text = fastjson.dumps(obj, compact=True)
    assert text == '{"a":[1,2,{"b":null}],"c":"x y"}'
    assert json.loads(text) == obj
    assert fastjson.dumps(obj) == json.dumps(obj)  # the default stays json.dumps' own


def test_json_log_line_is_compact_with_utc_z(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    path = tmp_path / "log.json"
    Logger(str(path), "json").error('boom "quoted"')
    line = path.read_text()
    assert line.endswith("\n") and line.count("\n") == 1
    assert line.startswith('{"level":"error","msg":"boom \\"quoted\\"","time":"')
    assert ", " not in line and '": ' not in line
    assert json.loads(line)["time"].endswith("Z")


def test_list_json_is_null_without_containers_and_compact_with(tmp_path, capsys):
    root = tmp_path / "root"
    assert cli.run_cli(["--root", str(root), "list", "--format", "json"]) == 0
    assert capsys.readouterr().out == "null\n"
    from ocirun.state import ContainerState, StateDir

    os.makedirs(root / "c1")
    StateDir(str(root), "c1").save(ContainerState(id="c1", bundle="/b", ociVersion="1.3.0", pid=0))
    assert cli.run_cli(["--root", str(root), "list", "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('[{"ociVersion":"1.3.0","id":"c1","pid":0,') and ", " not in out


def test_list_skips_a_corrupt_state_with_a_warning(tmp_path, capsys):
    """runc 1.1.5 lists the others and warns "load container bad: invalid character ..."."""
    from ocirun.state import ContainerState, StateDir

    root = tmp_path / "root"
    os.makedirs(root / "bad")
    (root / "bad" / "state.json").write_text("{bad")
    os.makedirs(root / "good")
    StateDir(str(root), "good").save(ContainerState(id="good", bundle="/b", ociVersion="1.3.0"))
    assert cli.run_cli(["--root", str(root), "list", "-q"]) == 0
    out, err = capsys.readouterr()
    assert out == "good\n"
    assert "load container bad:" in err

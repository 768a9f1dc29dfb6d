"""Error texts at the CLI edge spell errno as Go (runc) does: "no such file or directory"."""
from ocirun import cli
from ocirun.errors import go_errno_text


def test_errno_texts_lower_cased_at_their_start_only():
    assert go_errno_text("open /x: No such file or directory") == "open /x: no such file or directory"
    assert go_errno_text("mount: Read-only file system; Permission denied") == \
        "mount: read-only file system; permission denied"
    assert go_errno_text("Container ABC is Invalid") == "Container ABC is Invalid"  # not errno texts


def test_cli_edge_prints_go_spelling(capsys, tmp_path):
    assert cli.run_cli(["--root", str(tmp_path), "create", "-b", str(tmp_path / "nope"), "c1"]) == 1
    assert "config.json: no such file or directory" in capsys.readouterr().err

"""The help, version and argument-count contract of runc's CLI (urfave/cli layout), checked in-process.

runc 1.1.5 on this machine, for the record: `runc` alone and `runc -h` print the global help (exit 0,
line 1 "runc - Open Container Initiative runtime"); `runc help create` and `runc create -h` the command's
(line 1 "runc create - ..."); `runc help foo` / `runc foo` say "No help topic for 'foo'" and exit 3;
`runc state a b` prints "Incorrect Usage." and the command help on stdout, `"state" requires exactly 1
argument(s)` on stderr, exit 1; `runc -v` prints "runc version X", "commit: ...", "spec: X.Y.Z".
"""
import pytest

from ocirun import cli, help as helptext


def _run(capsys, *argv):
    code = cli.run_cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _command_names(text: str) -> set[str]:
    section = text.split("COMMANDS:\n")[1].split("\n\n")[0]
    return {line.split()[0].rstrip(",") for line in section.splitlines()}


def test_global_help_lists_every_command_and_nothing_else(capsys):
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    assert _command_names(out) == set(cli.COMMANDS) | {"help"}


@pytest.mark.parametrize("argv", [(), ("-h",), ("--help",), ("help",), ("h",)])
def test_global_help_forms(capsys, argv):
    code, out, err = _run(capsys, *argv)
    assert code == 0 and not err
    lines = out.splitlines()
    assert lines[0] == "NAME:"
    assert lines[1].endswith(" - Open Container Initiative runtime")


@pytest.mark.parametrize("cmd", sorted(cli.COMMANDS))
def test_every_command_has_help_in_both_forms(capsys, cmd):
    for argv in ((cmd, "--help"), (cmd, "-h"), ("help", cmd)):
        code, out, err = _run(capsys, *argv)
        assert code == 0, (argv, err)
        lines = out.splitlines()
        assert lines[0] == "NAME:" and lines[1].split(" - ")[0].split()[-1] == cmd
        assert "USAGE:" in lines
    # every flag the parser accepts is described
    for flag in cli.COMMANDS[cmd]:
        assert f"--{flag}" in out and flag in helptext.FLAG_TEXT, (cmd, flag)


@pytest.mark.parametrize("argv", [("help", "foo"), ("foo",), ("foo", "-h")])
def test_unknown_topic_exits_3(capsys, argv):
    code, out, err = _run(capsys, *argv)
    assert code == 3
    assert "No help topic for 'foo'" in err


@pytest.mark.parametrize("argv, want", [
    (("create", "a", "b"), '"create" requires exactly 1 argument(s)'),
    (("create",), '"create" requires exactly 1 argument(s)'),
    (("delete", "-f", "a", "b"), '"delete" requires exactly 1 argument(s)'),
    (("state", "a", "b"), '"state" requires exactly 1 argument(s)'),
    (("kill", "a", "KILL", "extra"), '"kill" requires a maximum of 2 argument(s)'),
    (("kill",), '"kill" requires a minimum of 1 argument(s)'),
    (("list", "x"), '"list" requires exactly 0 argument(s)'),
    (("features", "x"), '"features" requires exactly 0 argument(s)'),
    (("spec", "x"), '"spec" requires exactly 0 argument(s)'),
    (("exec",), '"exec" requires a minimum of 1 argument(s)'),
    (("ps",), '"ps" requires a minimum of 1 argument(s)'),
    (("update", "a", "b"), '"update" requires exactly 1 argument(s)'),
])
def test_argument_counts_refused_like_runc(capsys, tmp_path, argv, want):
    code, out, err = _run(capsys, "--root", str(tmp_path), *argv)
    assert code == 1
    assert want in err
    assert out.startswith("Incorrect Usage.\n\nNAME:\n")


def test_unknown_flag_shows_the_command_help(capsys):
    code, out, err = _run(capsys, "create", "-x", "c1")
    assert code == 1
    assert out.startswith("Incorrect Usage: flag provided but not defined: -x\n\nNAME:\n")
    assert "flag provided but not defined: -x" in err


@pytest.mark.parametrize("flag", ["-v", "--version"])
def test_version_has_runcs_three_lines(capsys, flag):
    code, out, _ = _run(capsys, flag)
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split(" version ")[1][0].isdigit()
    assert lines[1].startswith("commit: ") and len(lines[1]) > len("commit: ")
    assert lines[2].startswith("spec: 1.")


@pytest.mark.parametrize("argv0, name", [("/usr/local/bin/ocirun", "ocirun"), ("/usr/bin/runc", "runc"),
                                         ("-c", "ocirun"), ("", "ocirun")])
def test_program_name_is_the_name_we_were_called_by(argv0, name):
    assert helptext.program_name(argv0) == name


@pytest.mark.parametrize("cmd", sorted(cli.COMMANDS))
def test_every_command_has_an_entry_and_an_argument_count(cmd):
    """The tables agree: each command has its flags, its argument count and a callable entry, and no
    table names a command the others lack."""
    import importlib

    assert set(cli.ENTRY) == set(cli.COMMANDS) == set(cli.ARITY)
    module, func = cli.ENTRY[cmd].split(":")
    assert callable(getattr(importlib.import_module("ocirun" + module), func))


def test_state_of_a_missing_container_prints_runcs_line(capsys, tmp_path):
    code, out, err = _run(capsys, "--root", str(tmp_path), "state", "nosuch")
    assert (code, out, err) == (1, "", "ocirun: container nosuch does not exist\n")

"""`ocirun --help` names every command the parser accepts (it once left out the module commands)."""
from ocirun import cli


def _commands_section() -> list[str]:
    return cli.USAGE.split("commands:")[1].split("global options:")[0].split()


def test_usage_lists_every_command():
    words = set(_commands_section())
    for name in set(cli.COMMANDS) | set(cli.MODULE_COMMANDS):
        assert name in words, f"{name} missing from --help"


def test_usage_lists_no_unknown_command():
    lines = [line.split() for line in cli.USAGE.split("commands:")[1].split("global options:")[0].splitlines()]
    # two columns: the first word of the line, and the first word after the wide gap
    names = {words[0] for words in lines if words}
    known = set(cli.COMMANDS) | set(cli.MODULE_COMMANDS)
    assert names <= known, names - known

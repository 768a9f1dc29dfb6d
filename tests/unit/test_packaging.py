"""setup.cfg lists its packages by hand (ocirun.spec lives in spec/): none may be forgotten."""
import configparser
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_package_directory_is_listed():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    listed = set(cfg["options"]["packages"].split())
    found = {"ocirun.spec"}
    for dirpath, _, files in os.walk(os.path.join(REPO, "ocirun")):
        if "__init__.py" in files:
            found.add(os.path.relpath(dirpath, REPO).replace(os.sep, "."))
    assert listed == found
    assert os.path.isfile(os.path.join(REPO, "spec", "__init__.py"))
    assert cfg["options"]["scripts"].split() == ["bin/ocirun"]

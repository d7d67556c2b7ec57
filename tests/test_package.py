from importlib.metadata import version

import vgrad


def test_version_matches_installed_metadata():
    assert vgrad.__version__ == version("vgrad")


def test_public_names_exist():
    for name in vgrad.__all__:
        assert hasattr(vgrad, name), name

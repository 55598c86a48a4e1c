"""pyproject.toml lists the packages by hand (the source folders are mapped: converters/ installs as
edgekit.converters): every folder with an __init__.py must be in the list, or a wheel ships without it while the
editable install used in development still imports it (edgekit.bundle was missing this way)."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set()
    for package, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([package, *parts]))
    assert found == set(config["packages"]), (f"missing from pyproject.toml: {sorted(found - set(config['packages']))}; "
                                              f"listed but not a package: {sorted(set(config['packages']) - found)}")


def test_test_modules_have_unique_names():
    """The tests folders have no __init__.py, so pytest imports each test module by its bare name: two test_x.py in
    different folders collide and the whole run stops at collection ("import file mismatch")."""
    names: dict[str, list[str]] = {}
    for path in (ROOT / "tests").rglob("*.py"):
        if path.name != "conftest.py":
            names.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert not {n: p for n, p in names.items() if len(p) > 1}, {n: p for n, p in names.items() if len(p) > 1}

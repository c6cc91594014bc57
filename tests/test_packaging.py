"""What a packager and an operator read: the distribution's name, its licence and the pinned
dependencies the image installs."""

from __future__ import annotations

import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from support import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, equals, version = line.partition("==")
            assert equals, f"constraints.txt: {line!r} is not pinned with =="
            found[canonicalize_name(name)] = version
    return found


def test_every_dependency_is_pinned_within_its_range() -> None:
    pinned = pins()
    wanted = [Requirement(r) for r in PROJECT["dependencies"]]
    wanted += [Requirement(r) for r in PROJECT["optional-dependencies"]["postgres"]]
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not in constraints.txt; regenerate it"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {name}=={pinned[name]}, outside {requirement}"
        )
        for extra in requirement.extras:  # psycopg[binary] needs psycopg-binary
            assert canonicalize_name(f"{requirement.name}-{extra}") in pinned


def test_the_pins_are_closed_under_their_own_requirements() -> None:
    # What each pinned package requires (as installed here) is pinned too, so pip has nothing
    # left to choose when it builds the image.
    pinned = pins()
    missing = set()
    for name in pinned:
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is not None and not marker.evaluate({"extra": ""}):
                continue
            if canonicalize_name(requirement.name) not in pinned:
                missing.add(f"{requirement.name} (needed by {name})")
    assert sorted(missing) == []


def test_the_distribution_name_is_ours_and_the_command_stays_drip() -> None:
    # "drip" on PyPI is an unrelated project: `pip install drip` would install it.
    assert PROJECT["name"] == "drip-lessons"
    assert PROJECT["scripts"] == {"drip": "drip.cli:main"}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install drip-lessons" in readme


def test_the_licence_is_mit_everywhere() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text
    assert PROJECT["license"] == {"text": "MIT"}
    assert "License :: OSI Approved :: MIT License" in PROJECT["classifiers"]

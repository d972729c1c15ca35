"""conf/ ships inside the wheel, and an installed (non-editable) imgcls finds it there.

The wheel is built the way pip builds it for users (``pip wheel``), without build isolation so
that no index is needed: the build backend comes from the dev extras (``make setup``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT


def quiet_build_problems(output: str) -> list[str]:
    """Lines of a build's output that warn about the project's own packaging configuration.

    pip's own notices about the machine (``WARNING: ...`` at the start of a line, e.g. an
    index location it skips) are not the project's; anything the build backend says about
    ``pyproject.toml`` (deprecations, packages it would leave out) is indented under pip.
    """
    return [
        line
        for line in output.splitlines()
        if "warn" in line.lower() and not line.startswith("WARNING:")
    ]


def test_warning_lines_are_recognised():
    setuptools_output = (
        "  /tmp/x/setuptools/config/_apply_pyprojecttoml.py:82: BuildBackendWarning: "
        "`project.license` as a TOML table is deprecated\n"
        "WARNING: Location 'file:///opt/simple/pip/' is ignored: it is neither a file nor a dir\n"
        "Successfully built imgcls\n"
    )
    assert len(quiet_build_problems(setuptools_output)) == 1


@pytest.mark.slow
def test_wheel_contains_conf_and_installed_copy_finds_it(tmp_path):
    pytest.importorskip(
        "hatchling", reason="the build backend (hatchling) is not installed: run make setup"
    )
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("imgcls", "conf"):
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    assert quiet_build_problems(build.stdout + build.stderr) == []
    (wheel,) = wheels.glob("imgcls-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    conf_files = {p.relative_to(ROOT / "conf").as_posix() for p in (ROOT / "conf").rglob("*.yaml")}
    assert conf_files, "no config files found"
    for relative in conf_files:
        assert f"imgcls/conf/{relative}" in names, relative
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "imgcls").rglob("*.py")}
    assert modules, "no modules found"
    assert modules - names == set(), "modules missing from the wheel"
    templates = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "imgcls" / "evaluate" / "templates").iterdir()
    }
    assert len(templates) >= 6 and templates - names == set(), "report templates missing"
    for package in ("app", "base", "commands", "config"):  # the layers' packages, found alone
        assert f"imgcls/{package}/__init__.py" in names, package
    assert any(n.endswith("entry_points.txt") for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    assert "License-Expression: MIT" in zipfile.ZipFile(wheel).read(metadata).decode()

    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "from imgcls.config.files import config_dir; from imgcls.config.compose import compose; print(config_dir()); "
            "print(compose(['model=simplecnn']).model.name); "
            "from imgcls.evaluate.html_report import _environment; "
            "print(_environment().get_template('run.html.j2').filename)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    assert probe.returncode == 0, probe.stderr
    lines = probe.stdout.split()
    assert lines[0] == str(target / "imgcls" / "conf")
    assert lines[1] == "simplecnn"
    assert lines[2] == str(target / "imgcls" / "evaluate" / "templates" / "run.html.j2")

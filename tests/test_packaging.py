"""conf/ ships inside the wheel, and an installed (non-editable) imgcls finds it there."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_wheel_contains_conf_and_installed_copy_finds_it(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
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
            "-q",
            "-w",
            str(wheels),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("imgcls-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    conf_files = {p.relative_to(ROOT / "conf").as_posix() for p in (ROOT / "conf").rglob("*.yaml")}
    assert conf_files, "no config files found"
    for relative in conf_files:
        assert f"imgcls/conf/{relative}" in names, relative
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "imgcls").rglob("*.py")}
    assert modules - names == set(), "add the missing packages to pyproject.toml"
    assert any(n.endswith("entry_points.txt") for n in names)

    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "from imgcls.config.files import config_dir; from imgcls.config.compose import compose; print(config_dir()); "
            "print(compose(['model=simplecnn']).model.name)",
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

"""Figures of how many places own a concept, for a git revision (default: the working tree).

    python benchmarks/code_metrics.py [REV ...]      e.g. 17f52c6 HEAD

Counted the same way for every revision, from the source alone:
- validation lines: non-blank lines of the functions and classes whose job is to check,
  translate or mirror a config value (by name, listed in CHECKERS), plus every other
  ``if ...: raise UserError`` that says "is invalid"/"must be", in the modules of SCOPE;
- run-folder literals: lines in imgcls/ (outside the run record module) that spell a file or
  folder name of a run or sweep folder as a string literal, and the modules they are in;
- override readers: modules that read ``overrides.yaml`` themselves;
- key=value splitters: modules that split ``key=value`` text by hand (arguments or
  recorded overrides), and the modules that use argparse or Hydra's override parser;
- README lines.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKERS = re.compile(
    r"^(check\w*|_check\w*|validate\w*|require|at_least|positive|probability|ordered_pair|show|"
    r"_probability|_range|_options|_matches|_type_name|_type_hints|_parameters|make_options|"
    r"_field_type|_is_dataclass_type|_enum_member|options|compile_mode|translate_compose_error|"
    r"unknown_key_error|_expected|__post_init__|from_trainer|speed_options|Range|EngineSettings)$"
)
RECORD_MODULES = ("imgcls/base/record.py",)
NAMES = re.compile(
    r"""["'](summary\.json|last\.pt|best\.pt|overrides\.yaml|metrics\.csv|config\.yaml|"""
    r"""checkpoints|\.hydra|plots|train\.log|test_metrics\.json|report\.html|"""
    r"""leaderboard\.csv|leaderboard\.md|multirun\.yaml)["']"""
)


def files(rev: str | None) -> dict[str, str]:
    """Every imgcls/*.py file's text (and README.md) at ``rev``, or in the working tree."""
    if rev is None:
        paths = [p.relative_to(ROOT).as_posix() for p in (ROOT / "imgcls").rglob("*.py")]
        paths.append("README.md")
        return {p: (ROOT / p).read_text() for p in paths}
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", rev], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    wanted = [p for p in listing if (p.startswith("imgcls/") and p.endswith(".py"))]
    wanted.append("README.md")
    return {p: _git_show(rev, p) for p in wanted}


def _git_show(rev: str, path: str) -> str:
    return subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True
    ).stdout


# Where a config value's validity is decided: the registry, the config layer (without the
# command grammar), validation and build, and the component packages.
SCOPE = re.compile(
    r"^imgcls/(registry\.py|config/(?!arguments)|app/(validation|build)\.py|train/|data/|models/|"
    r"transfer/)"
)


def validation_lines(sources: dict[str, str]) -> tuple[int, int]:
    """(lines, modules) of validation and mirroring code in SCOPE."""
    total, modules = 0, 0
    for path, text in sources.items():
        if not path.endswith(".py") or not SCOPE.match(path):
            continue
        lines = text.splitlines()
        tree = ast.parse(text)
        counted: set[int] = set()
        for node in ast.walk(tree):
            named = isinstance(node, (ast.FunctionDef, ast.ClassDef))
            if named and CHECKERS.match(node.name):
                counted.update(range(node.lineno, node.end_lineno + 1))
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and any(isinstance(b, ast.Raise) for b in node.body):
                segment = "\n".join(lines[node.lineno - 1 : node.end_lineno])
                if "UserError" in segment and re.search(r"is invalid|must be", segment):
                    counted.update(range(node.lineno, node.end_lineno + 1))
        found = sum(1 for n in counted if lines[n - 1].strip())
        total, modules = total + found, modules + bool(found)
    return total, modules


def report(rev: str | None) -> None:
    sources = files(rev)
    code = {p: t for p, t in sources.items() if p.endswith(".py")}
    literal_lines = {
        p: sum(1 for line in t.splitlines() if NAMES.search(line))
        for p, t in code.items()
        if p not in RECORD_MODULES
    }
    spelled = {p: n for p, n in literal_lines.items() if n}
    readers = sorted(p for p, t in code.items() if '"overrides.yaml"' in t)
    parsers = sorted(
        p for p, t in code.items() if re.search(r"\.partition\(\"=\"\)|\.split\(\"=\", 1\)", t)
    )
    grammars = {
        "argparse": sorted(p for p, t in code.items() if "import argparse" in t),
        "hydra parser": sorted(p for p, t in code.items() if "OverridesParser" in t),
    }
    print(f"revision: {rev or 'working tree'}")
    lines, modules = validation_lines(code)
    print(f"  validation and mirroring lines: {lines} in {modules} modules")
    print(f"  run-folder literals: {sum(spelled.values())} lines in {len(spelled)} modules")
    print(f"  modules reading overrides.yaml themselves: {len(readers)} {readers}")
    print(f"  modules splitting key=value text by hand: {len(parsers)} {parsers}")
    for name, users in grammars.items():
        print(f"  modules using {name}: {len(users)} {users}")
    print(f"  README lines: {len(sources['README.md'].splitlines())}")


if __name__ == "__main__":
    for rev in sys.argv[1:] or [None]:
        report(rev)

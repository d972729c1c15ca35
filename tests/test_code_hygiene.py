"""Code a newcomer can read: every public function and class of the lower layers and of the
application says why it exists, and comments name reasons, never tickets."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "imgcls"
DOCUMENTED = [
    *sorted((PACKAGE / "base").rglob("*.py")),
    *sorted((PACKAGE / "config").rglob("*.py")),
    PACKAGE / "registry.py",
    *sorted((PACKAGE / "app").rglob("*.py")),
]


def _public_without_docstring(path: Path) -> list[str]:
    """``name:line`` of each public function, method and class of ``path`` with no docstring."""
    tree = ast.parse(path.read_text())
    missing = []

    def visit(node: ast.AST, inside_class: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                public = not child.name.startswith("_")
                if public and ast.get_docstring(child) is None and not _exempt(child, inside_class):
                    missing.append(f"{child.name}:{child.lineno}")
                if isinstance(child, ast.ClassDef) and public:
                    visit(child, True)

    visit(tree, False)
    return missing


def _exempt(node: ast.AST, inside_class: bool) -> bool:
    """Enum members and overrides of a documented protocol need no docstring of their own."""
    return (
        inside_class
        and isinstance(node, ast.FunctionDef)
        and node.name
        in {
            "state_dict",
            "load_state_dict",
            "forward",
        }
    )


@pytest.mark.parametrize("path", DOCUMENTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_public_function_and_class_has_a_docstring(path):
    assert _public_without_docstring(path) == []


TICKET = re.compile(r"\bissues? ?#?\d+\b|\bseed document\b", re.IGNORECASE)


def test_code_and_config_comments_name_reasons_not_tickets():
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "conf").rglob("*.yaml")]
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if TICKET.search(line)
    ]
    assert found == []

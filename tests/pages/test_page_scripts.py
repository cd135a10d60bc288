"""Page scripts write only what they mean to: Streamlit's "magic" is off, and no page holds a
bare string that magic would write onto the page (a constant's docstring once showed up as text
above the Results page's title)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT

SCRIPTS = sorted((PROJECT_ROOT / "pages").glob("*.py")) + [PROJECT_ROOT / "Home.py"]


def test_streamlit_magic_is_off() -> None:
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["magicEnabled"] is False


class _BareStrings(ast.NodeVisitor):
    """String expression statements a script runs (not inside a function or class)."""

    def __init__(self) -> None:
        self.found: list[int] = []

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        return

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        return

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant | ast.JoinedStr) and (
                isinstance(node.value, ast.JoinedStr) or isinstance(node.value.value, str)):
            self.found.append(node.lineno)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_page_script_has_no_bare_string_but_its_docstring(script: Path) -> None:
    tree = ast.parse(script.read_text())
    visitor = _BareStrings()
    for node in tree.body[1:]:  # the first statement may be the module docstring
        visitor.visit(node)
    assert not visitor.found, f"{script.name}: bare strings at lines {visitor.found}"

"""The house rules that keep `stance/` readable: short functions, short modules, no sys.path edits."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_function_in_stance_is_longer_than_80_lines_and_no_module_than_400():
    long = []
    for path in sorted((ROOT / "stance").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        if source.count("\n") > 400:
            long.append(f"{path.name}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.name}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert long == []


def test_no_code_edits_sys_path():
    hits = [str(p.relative_to(ROOT)) for folder in ("stance", "scripts", "experiments", "corpus")
            for p in (ROOT / folder).rglob("*.py") if "sys.path" in p.read_text(encoding="utf-8")]
    assert hits == []

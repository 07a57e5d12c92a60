"""Code-shape figures for the layering work (issue 11): long modules, long functions, SQL homes.

    python benchmarks/code_shape.py

Counts, over the runtime packages (`bot`, `classifiers`, `digests`; data builders, migrations
and tests left out): modules over 400 lines, functions over 60 lines, and lines that build or
run SQL (SQLAlchemy statement builders and session calls) outside `bot/storage`.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "classifiers", "digests")
# A file takes part when it imports SQLAlchemy or the ORM rows; in it, a line counts when it
# builds a statement or runs one through a session or connection.
SQL_FILE = re.compile(r"^\s*(from|import) (sqlalchemy|bot\.storage\.models)\b", re.M)
SQL = re.compile(
    r"(?<![\w.])(select|insert|update|delete|text|func\.\w+|and_|or_|exists|bindparam|tuple_)\("
    r"|\.(where|filter_by|order_by|group_by|having|returning|on_conflict_do_nothing"
    r"|on_conflict_do_update|execute|scalars|scalar|query|begin_nested|add_all)\("
    r"|\.(join|outerjoin|add|merge|get|delete)\([A-Z]\w*Row\b"
)


def sources() -> list[Path]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if "/data/" in rel or "/migrations/" in rel:
                continue
            out.append(path)
    return out


def main() -> int:
    long_modules, long_functions, sql_lines = [], [], {}
    for path in sources():
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        if len(lines) > 400:
            long_modules.append((len(lines), rel))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = node.end_lineno - node.lineno + 1
                if size > 60:
                    long_functions.append((size, f"{rel}:{node.name}"))
        if not rel.startswith("bot/storage/") and SQL_FILE.search(text):
            hits = sum(
                1 for line in lines if SQL.search(line) and not line.lstrip().startswith("#")
            )
            if hits:
                sql_lines[rel] = hits
    print(f"modules over 400 lines: {len(long_modules)}")
    for size, rel in sorted(long_modules, reverse=True):
        print(f"  {size:5d}  {rel}")
    print(f"functions over 60 lines: {len(long_functions)}")
    for size, name in sorted(long_functions, reverse=True):
        print(f"  {size:5d}  {name}")
    print(f"lines of SQL outside bot/storage: {sum(sql_lines.values())}")
    for rel, hits in sorted(sql_lines.items(), key=lambda kv: -kv[1]):
        print(f"  {hits:5d}  {rel}")
    print("command: python benchmarks/code_shape.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())

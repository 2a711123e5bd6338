#!/usr/bin/env python3
"""How much SQL the two storage backends write twice.

Reads the string literals that start with a SQL verb in collector/src/storage/{sqlite,postgres}
and counts the SQLite statements whose text PostgreSQL also has: exactly (but for the
placeholders, `?1` and `$1`), and loosely (also taking SQLite's old `_ms` column suffixes for
PostgreSQL's names). Statements both run alike live once in collector/src/storage/sql/ and are
not counted. Usage: scripts/sql-written-twice.py [CHECKOUT]
"""
import pathlib
import re
import sys

VERB = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP)\b", re.I)
LITERAL = re.compile(r'r#"(.*?)"#|"((?:[^"\\]|\\.)*)"', re.S)


def statements(paths):
    found = []
    for path in paths:
        for m in LITERAL.finditer(path.read_text()):
            text = m.group(1) if m.group(1) is not None else m.group(2)
            if VERB.match(text):
                found.append(text)
    return found


def exact(sql):
    sql = re.sub(r"\?(\d+)", r"$\1", sql.replace("\\n", " "))
    return re.sub(r"\s+", " ", sql).strip().lower()


def loose(sql):
    return re.sub(r"\b(\w+)_ms\b", r"\1_at", exact(sql))


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".") / "collector/src/storage"
    sqlite = statements(sorted((root / "sqlite").rglob("*.rs")) + [root / "sqlite.rs"])
    postgres = statements(sorted((root / "postgres").rglob("*.rs")) + [root / "postgres.rs"])
    for name, norm in (("exactly", exact), ("loosely", loose)):
        theirs = {norm(s) for s in postgres}
        twice = sum(1 for s in sqlite if norm(s) in theirs)
        print(f"{twice} of {len(sqlite)} SQLite statements ({len(postgres)} PostgreSQL) are written twice, {name}")


if __name__ == "__main__":
    main()

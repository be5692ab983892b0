"""Quoting for SQL that is assembled from names and values (DuckDB's rules)."""

from __future__ import annotations


def quote(name: str) -> str:
    """An identifier, double-quoted: safe whatever characters the name holds."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A string literal, single-quoted."""
    return "'" + text.replace("'", "''") + "'"

"""Rendering a command's result as az does: `-o json|jsonc|tsv|table|yaml|none` after `--query`.

The rules follow az's documented behaviour so that scripts written for `az acr` carry over:

- `--query` (JMESPath) is applied first; objects it builds (`{a: x, b: y}`) keep the order
  written in the query.
- json: two-space indent, keys sorted, non-ASCII kept as is.
- tsv: one line per element of a list (a lone object or scalar is a list of one); an object
  gives its values tab-separated, keys sorted unless the query ordered them; a nested list
  gives its length and a nested object nothing, so columns stay aligned. Haven prints null
  as an empty field and booleans as `true`/`false`, so shell tests can compare them.
- table: a command's own columns when no query is given, else one column per scalar key
  (`id`, `type` and `etag` left out, first letter capitalised); header, dashes, rows.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import jmespath
import yaml

from haven.cli.errors import CliError

OUTPUT_FORMATS = ("json", "jsonc", "tsv", "table", "yaml", "none")

TableTransformer = Callable[[Any], Any]
"""Turns a command's result into the rows (dicts, column name → value) of its table."""

_TABLE_SKIPPED_KEYS = frozenset({"id", "type", "etag"})
_COLUMN_GAP = "  "


def compile_query(expression: str) -> jmespath.parser.ParsedResult:
    """The compiled JMESPath `expression`; raises ValueError with the parser's reason."""
    try:
        return jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as error:
        raise ValueError(str(error).replace("\n", " ")) from error


def apply_query(result: Any, query: jmespath.parser.ParsedResult) -> Any:
    try:
        return query.search(result, jmespath.Options(dict_cls=OrderedDict))
    except jmespath.exceptions.JMESPathError as error:
        raise CliError(f"--query: {error}") from error


def render(
    result: Any,
    output: str,
    *,
    query: jmespath.parser.ParsedResult | None = None,
    table: TableTransformer | None = None,
    color: bool = False,
) -> str:
    """The text a command prints for `result` (already parsed JSON) in format `output`."""
    if query is not None:
        result = apply_query(result, query)
    if output == "none":
        return ""
    if output == "json" or (output == "jsonc" and not color):
        return to_json(result)
    if output == "jsonc":
        return colorize_json(to_json(result))
    if output == "yaml":
        return to_yaml(result)
    if output == "tsv":
        return to_tsv(result)
    if output == "table":
        if table is not None and query is None:
            return to_table(table(result), sort_keys=False, columns_given=True)
        return to_table(result, sort_keys=query is None)
    raise CliError(f"unknown output format {output!r}; allowed: {', '.join(OUTPUT_FORMATS)}")


def to_json(result: Any) -> str:
    return json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def to_yaml(result: Any) -> str:
    # safe_dump refuses OrderedDict (what --query builds); plain dicts keep their order.
    plain = json.loads(json.dumps(result))
    return str(yaml.safe_dump(plain, default_flow_style=False, allow_unicode=True, sort_keys=False))


def _tsv_field(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return str(len(value))
    if isinstance(value, dict):
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _ordered_values(row: Mapping[str, Any]) -> list[Any]:
    if isinstance(row, OrderedDict):
        return list(row.values())
    return [row[key] for key in sorted(row)]


def to_tsv(result: Any) -> str:
    rows = result if isinstance(result, list) else [result]
    lines = []
    for row in rows:
        if isinstance(row, dict):
            lines.append("\t".join(_tsv_field(value) for value in _ordered_values(row)))
        elif isinstance(row, list):
            lines.append("\t".join(_tsv_field(value) for value in row))
        else:
            lines.append(_tsv_field(row))
    return "".join(line + "\n" for line in lines)


def _table_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _table_row(item: Any, sort_keys: bool) -> dict[str, Any]:
    if isinstance(item, dict):
        keys = sorted(item) if sort_keys else list(item)
        return {
            key[:1].upper() + key[1:]: item[key]
            for key in keys
            if key not in _TABLE_SKIPPED_KEYS
            and item[key] is not None
            and not isinstance(item[key], (list, dict))
        }
    if isinstance(item, list):
        return {f"Column{index}": value for index, value in enumerate(item, start=1)}
    return {"Result": item}


def to_table(result: Any, *, sort_keys: bool, columns_given: bool = False) -> str:
    """az's `simple` table: column names, a dashed rule under each, then the rows.

    With `columns_given` (a command's own table format), rows are taken as they are and
    only columns empty in every row are left out.
    """
    items = result if isinstance(result, list) else [result]
    if columns_given:
        rows = [item for item in items if isinstance(item, dict)]
    else:
        rows = [_table_row(item, sort_keys) for item in items if item is not None]
    if not rows:
        return ""
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    columns = [col for col in columns if any(row.get(col) is not None for row in rows)]
    if not columns:
        raise CliError(
            "Table output unavailable. Use the --query option to specify an appropriate query."
        )
    cells = [[_table_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(col), *(len(line[i]) for line in cells)) for i, col in enumerate(columns)]

    def line(values: list[str]) -> str:
        return _COLUMN_GAP.join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    text = [line(columns), line(["-" * w for w in widths]), *(line(c) for c in cells)]
    return "\n".join(text) + "\n"


_JSON_TOKEN = re.compile(
    r'(?P<key>"(?:[^"\\]|\\.)*")(?=\s*:)'
    r'|(?P<string>"(?:[^"\\]|\\.)*")'
    r"|(?P<literal>\btrue\b|\bfalse\b|\bnull\b)"
    r"|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
)
_COLORS = {"key": "\x1b[94m", "string": "\x1b[33m", "literal": "\x1b[36m", "number": "\x1b[32m"}
_RESET = "\x1b[39m"


def colorize_json(text: str) -> str:
    """`text` (JSON) with ANSI colours for keys, strings, numbers and literals."""

    def paint(match: re.Match[str]) -> str:
        kind = match.lastgroup or "string"
        return f"{_COLORS[kind]}{match.group(0)}{_RESET}"

    return _JSON_TOKEN.sub(paint, text)

"""Figures with their targets: the printed table and the JSON document."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

PASS, MISS, INFO = "PASS", "MISS", ""


@dataclass
class Row:
    section: str
    figure: str
    product: str
    yardstick: str = ""
    ratio: str = ""
    target: str = ""
    verdict: str = INFO
    note: str = ""


@dataclass
class Section:
    """What one measurement found: its rows for the table, its raw data for the JSON."""

    name: str
    rows: list[Row] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def row(self, figure: str, product, **kwargs) -> Row:
        row = Row(self.name, figure, fmt(product), **{k: v for k, v in kwargs.items()})
        self.rows.append(row)
        return row


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 0.1 or value == 0 else f"{value:.3f}"
    return str(value)


def verdict(ok: bool | None) -> str:
    if ok is None:
        return INFO
    return PASS if ok else MISS


def ratio(product: float | None, yardstick: float | None) -> float | None:
    if not product or not yardstick:
        return None
    return product / yardstick


COLUMNS = (
    ("section", "measure"),
    ("figure", "figure"),
    ("product", "product"),
    ("yardstick", "yardstick"),
    ("ratio", "ratio"),
    ("target", "target"),
    ("verdict", "result"),
)


def table(sections: list[Section]) -> str:
    rows = [row for section in sections for row in section.rows]
    for section in sections:
        if section.error:
            rows.append(Row(section.name, "measurement failed", "-", note=section.error))
    header = {key: title for key, title in COLUMNS}
    widths = {
        key: max(len(title), *(len(str(getattr(row, key))) for row in rows)) if rows else len(title)
        for key, title in COLUMNS
    }
    right = {"product", "yardstick", "ratio"}

    def line(values: dict[str, str]) -> str:
        cells = []
        for key, _ in COLUMNS:
            text = str(values[key])
            cells.append(text.rjust(widths[key]) if key in right else text.ljust(widths[key]))
        return "  ".join(cells).rstrip()

    out = [line(header), "  ".join("-" * widths[key] for key, _ in COLUMNS)]
    previous = None
    for row in rows:
        values = asdict(row)
        if row.section == previous:
            values["section"] = ""
        previous = row.section
        out.append(line(values))
    notes = [f"- {section.name}: {note}" for section in sections for note in section.notes] + [
        f"- {row.section} / {row.figure}: {row.note}" for row in rows if row.note
    ]
    if notes:
        out += ["", "Notes:", *notes]
    return "\n".join(out)


def write_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2, default=str) + "\n")
    tmp.replace(path)

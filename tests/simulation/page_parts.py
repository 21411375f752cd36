"""What the report page is made of, read with the standard library's HTML parser (tests only)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import numpy as np


@dataclass
class PageParts(HTMLParser):
    """Collects, in document order, the elements the structure tests look at."""

    order: list[tuple[str, str]] = field(default_factory=list)
    """(kind, id) in document order: kind is headline, symbol, chart or table."""
    script_sources: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)
    table_classes: list[str] = field(default_factory=list)
    _in_figures: bool = False
    _figures_text: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        HTMLParser.__init__(self)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "section" and "headline" in classes:
            self.order.append(("headline", a.get("id", "")))
        elif tag == "details" and "symbol" in classes:
            self.order.append(("symbol", a["id"]))
        elif tag == "div" and "chart" in classes:
            self.order.append(("chart", a["data-figure"]))
        elif tag == "table":
            self.order.append(("table", ""))
            self.table_classes.append(a.get("class", ""))
        elif tag == "script":
            if "src" in a:
                self.script_sources.append(a["src"])
            self._in_figures = a.get("id") == "figures"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_figures:
            self.figures = _decode_arrays(json.loads("".join(self._figures_text)))
            self._in_figures = False

    def handle_data(self, data: str) -> None:
        (self._figures_text if self._in_figures else self.text).append(data)

    def ids(self, kind: str) -> list[str]:
        return [i for k, i in self.order if k == kind]


def parse_page(page: str) -> PageParts:
    parts = PageParts()
    parts.feed(page)
    parts.close()
    return parts


def axis_titles(figure: dict[str, Any]) -> dict[str, str]:
    """Every axis of a plotly figure that a trace uses (``xaxis``, ``yaxis``, ``yaxis2`` ...) and its title."""
    layout = figure["layout"]
    used = {"xaxis", "yaxis"}
    for trace in figure["data"]:
        for key in ("xaxis", "yaxis"):
            ref = trace.get(key)
            if ref:
                used.add(f"{key}{ref[1:]}" if len(ref) > 1 else key)
    return {axis: ((layout.get(axis) or {}).get("title") or {}).get("text", "") for axis in sorted(used)}


def _decode_arrays(value: Any) -> Any:
    """Plotly's JSON keeps numpy arrays as typed arrays (``{"dtype", "bdata", "shape"}``): back to lists."""
    if isinstance(value, dict):
        if set(value) in ({"dtype", "bdata"}, {"dtype", "bdata", "shape"}):
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            if "shape" in value:
                array = array.reshape([int(n) for n in str(value["shape"]).split(",")])
            return array.tolist()
        return {k: _decode_arrays(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_arrays(v) for v in value]
    return value

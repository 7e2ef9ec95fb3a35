"""The drawn graph as DOT text, as a file (SVG, PNG, PDF or DOT) or as inline SVG."""

from __future__ import annotations

import os
from typing import Any

from maskviz.errors import MaskvizError
from maskviz.render.dot import to_agraph

FORMATS = (".svg", ".png", ".pdf", ".dot")


def to_dot(graph: Any, *, depth: int | None = None) -> str:
    """The styled graph as DOT text (deterministic, without layout positions).

    Args:
        graph: a `networkx.DiGraph` from `maskviz.graph.build_graph`.
        depth: draw calls down to this nesting depth; deeper calls are collapsed
            into their enclosing call's box. `None` draws everything.
    """
    return to_agraph(graph, depth=depth).string()


def render_file(graph: Any, path: str | os.PathLike, *, depth: int | None = None) -> str:
    """Draws `graph` to `path`, in the format its suffix names.

    Args:
        graph: a `networkx.DiGraph` from `maskviz.graph.build_graph`.
        path: where to write; ends in `.svg`, `.png`, `.pdf` or `.dot`.
        depth: as for `to_dot`.

    Returns:
        The written path, as a string.

    Raises:
        MaskvizError: the suffix is not one of the supported formats.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FORMATS:
        raise MaskvizError(
            f"Cannot write graph '{path}': unknown format. "
            "Expected a path ending in .svg, .png, .pdf or .dot."
        )
    agraph = to_agraph(graph, depth=depth)
    if suffix == ".dot":
        with open(path, "w", encoding="utf-8") as f:
            f.write(agraph.string())
    else:
        agraph.draw(path, format=suffix[1:], prog="dot")
    return path


def to_svg(graph: Any, *, depth: int | None = None) -> str:
    """The drawn graph as an SVG document (a string), for inline HTML."""
    data = to_agraph(graph, depth=depth).draw(format="svg", prog="dot")
    text = data.decode("utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def auto_depth(graph: Any, *, max_nodes: int = 250) -> int | None:
    """The largest depth at which at most `max_nodes` calls are drawn (`None`: all fit)."""
    depths = [d["depth"] for _, d in graph.nodes(data=True) if d["kind"] == "call"]
    if len(depths) <= max_nodes:
        return None
    best = 0
    for level in range(max(depths) + 1):
        if sum(1 for x in depths if x <= level) <= max_nodes:
            best = level
    return best

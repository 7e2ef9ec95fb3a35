"""The call graph, drawn: DOT, SVG, PNG and PDF through pygraphviz's bundled Graphviz.

This module only styles what `maskviz.graph.build_graph` built:

- a call is a box showing its layer name, class, output shape and mask; its fill
  colour (and the word under its name) is its mask role;
- an edge's colour is its mask state: carried, none, wrong rank, not delivered;
- a finding is a red badge with its rule id on its call's box;
- a nested model (or wrapper, or RNN with its cell) is a cluster: its own call is
  the box at the top, where its inputs come in, and `NAME out` at the bottom, where
  its outputs leave; `depth=N` collapses everything below depth N into one box
  that shows its mask in and out and the findings inside;
- inputs a layer got from code maskviz does not see (a `keras.ops` call) are drawn
  as a dotted edge from the previous call, so the flow still reads in order.

The DOT text is deterministic: nodes and edges come in trace order, ids are layer
paths, and no layout positions are written (Graphviz lays the graph out when it
draws a file).
"""

from maskviz.render.dot import FANOUT_PROXY, to_agraph
from maskviz.render.formats import FORMATS, auto_depth, render_file, to_dot, to_svg
from maskviz.render.style import (
    EDGE_HELP,
    EDGE_STYLE,
    FONT,
    NAME_LIMIT,
    ROLE_FILL,
    ROLE_HELP,
    SEVERITY_FILL,
)

__all__ = [
    "EDGE_HELP",
    "EDGE_STYLE",
    "FANOUT_PROXY",
    "FONT",
    "FORMATS",
    "NAME_LIMIT",
    "ROLE_FILL",
    "ROLE_HELP",
    "SEVERITY_FILL",
    "auto_depth",
    "render_file",
    "to_agraph",
    "to_dot",
    "to_svg",
]

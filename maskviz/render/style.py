"""The drawing's vocabulary: fills for mask roles, strokes for mask states, badge colours."""

from __future__ import annotations

FONT = "Helvetica,Arial,sans-serif"
ROLE_FILL = {
    "generator": "#c8e6c9",
    "propagator": "#ffffff",
    "modifier": "#e1bee7",
    "consumer": "#bbdefb",
    "destroyer": "#ffcdd2",
    "none": "#eeeeee",
}
ROLE_HELP = {
    "generator": "makes a mask",
    "propagator": "passes it on",
    "modifier": "changes it",
    "consumer": "uses it",
    "destroyer": "drops it",
    "none": "no mask in or out",
}
EDGE_STYLE = {
    "carried": {"color": "#1565c0", "penwidth": "2.2", "style": "solid"},
    "none": {"color": "#9e9e9e", "penwidth": "1", "style": "solid"},
    "wrong-rank": {"color": "#ef6c00", "penwidth": "2.6", "style": "bold"},
    "not-delivered": {"color": "#c62828", "penwidth": "2.6", "style": "dashed"},
}
EDGE_HELP = {
    "carried": "mask carried",
    "none": "no mask",
    "wrong-rank": "mask of the wrong rank/shape",
    "not-delivered": "mask not delivered to call",
}
SEVERITY_FILL = {"error": "#c62828", "warning": "#ef6c00", "info": "#1565c0"}
NAME_LIMIT = 80  # characters of a name, class or message drawn in a label

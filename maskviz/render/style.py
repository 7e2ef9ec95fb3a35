"""The drawing's vocabulary: fills for mask roles, strokes for mask states, badge colours."""

from __future__ import annotations

from maskviz.graph import MaskState
from maskviz.trace.records import Role

FONT = "Helvetica,Arial,sans-serif"
ROLE_FILL = {
    Role.GENERATOR: "#c8e6c9",
    Role.PROPAGATOR: "#ffffff",
    Role.MODIFIER: "#e1bee7",
    Role.CONSUMER: "#bbdefb",
    Role.DESTROYER: "#ffcdd2",
    Role.NONE: "#eeeeee",
}
ROLE_HELP = {
    Role.GENERATOR: "makes a mask",
    Role.PROPAGATOR: "passes it on",
    Role.MODIFIER: "changes it",
    Role.CONSUMER: "uses it",
    Role.DESTROYER: "drops it",
    Role.NONE: "no mask in or out",
}
EDGE_STYLE = {
    MaskState.CARRIED: {"color": "#1565c0", "penwidth": "2.2", "style": "solid"},
    MaskState.NONE: {"color": "#9e9e9e", "penwidth": "1", "style": "solid"},
    MaskState.WRONG_RANK: {"color": "#ef6c00", "penwidth": "2.6", "style": "bold"},
    MaskState.NOT_DELIVERED: {"color": "#c62828", "penwidth": "2.6", "style": "dashed"},
}
EDGE_HELP = {
    MaskState.CARRIED: "mask carried",
    MaskState.NONE: "no mask",
    MaskState.WRONG_RANK: "mask of the wrong rank/shape",
    MaskState.NOT_DELIVERED: "mask not delivered to call",
}
SEVERITY_FILL = {"error": "#c62828", "warning": "#ef6c00", "info": "#1565c0"}
NAME_LIMIT = 80  # characters of a name, class or message drawn in a label

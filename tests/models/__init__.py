"""One registry of the model fixtures that tests, samples, goldens and docs use.

Every builder lives in one module of this package and is registered here once:

- `zoo`: models named for the mask bug they show, each with its true `*_fixed` twin;
- `zoo_bugs`: one model per bug class for `maskviz fix`, with padded sample data;
- `zoo_truth`: keras.io / keras-hub architectures whose padding truth is measured;
- `reported_bugs`: public masking reports reproduced, with the report's URL;
- `property_models`: the family of generated models of the property test;
- `render`: the models drawn into tests/goldens;
- `oracle`: the models of the leak-oracle tests;
- `samples`: the models bundled in maskviz/samples (`sample_models/make_samples.py`).

An entry carries a name (`"<group>:<builder>"`), a zero-argument builder, tags, and
where they apply the bug class, the source URL, the function that measures the
entry's truth on the installed Keras (truncation / perturbation; a verdict is never
stored) and the name of its true twin: the same model with only the bug repaired.

Nothing here imports pytest or maskviz (only `samples` and `zoo` use maskviz's own
layers): `sample_models/make_samples.py` imports it with `tests/` on `sys.path`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

GROUPS = (
    "zoo",
    "zoo_bugs",
    "zoo_truth",
    "reported_bugs",
    "property_models",
    "render",
    "oracle",
    "samples",
)


@dataclass(frozen=True)
class Fixture:
    """One registered model fixture.

    Attributes:
        name: `"<group>:<builder>"`, unique.
        build: returns what the group's tests use (a model, or a model with data).
        tags: free labels: the group, `"bug"` or `"clean"`, layer kinds, ...
        bug: the bug class the model shows (None for a model expected clean).
        source: where the model comes from (a report's URL, a keras.io example).
        truth: measures the truth of a built entry without maskviz, or None.
        twin: the registered name of the model with only the bug repaired.
    """

    name: str
    build: Callable[[], Any]
    tags: frozenset[str] = field(default_factory=frozenset)
    bug: str | None = None
    source: str | None = None
    truth: Callable[..., Any] | None = None
    twin: str | None = None

    @property
    def group(self) -> str:
        return self.name.split(":", 1)[0]


REGISTRY: dict[str, Fixture] = {}


def register(
    group: str,
    name: str,
    build: Callable[[], Any],
    *,
    tags: tuple[str, ...] | frozenset[str] = (),
    bug: str | None = None,
    source: str | None = None,
    truth: Callable[..., Any] | None = None,
    twin: str | None = None,
) -> Fixture:
    """Adds one entry; a second entry of the same name is an error (no duplicates)."""
    key = f"{group}:{name}"
    if key in REGISTRY:
        raise ValueError(f"fixture {key!r} is registered twice")
    kind = "bug" if bug else "clean"
    entry = Fixture(
        key,
        build,
        frozenset(tags) | {group, kind},
        bug,
        source,
        truth,
        None if twin is None else f"{group}:{twin}",
    )
    REGISTRY[key] = entry
    return entry


def seeded(build: Callable[[], Any], seed: int = 0) -> Callable[[], Any]:
    """`build`, called after `keras.utils.set_random_seed(seed)`."""

    def run() -> Any:
        import keras

        keras.utils.set_random_seed(seed)
        return build()

    run.__doc__ = build.__doc__
    return run


def load(*groups: str) -> dict[str, Fixture]:
    """Imports the modules of `groups` (default: all) so that their entries are here."""
    for group in groups or GROUPS:
        importlib.import_module(f"{__name__}.{group}")
    return REGISTRY


def get(name: str) -> Fixture:
    """The entry `name` (`"group:builder"`), loading its group first."""
    load(name.split(":", 1)[0])
    return REGISTRY[name]


def select(*tags: str) -> Iterator[Fixture]:
    """The entries carrying every one of `tags` (all groups loaded)."""
    load()
    wanted = set(tags)
    return (f for f in REGISTRY.values() if wanted <= f.tags)


def twins() -> Iterator[tuple[Fixture, Fixture]]:
    """(bug model, its true twin) for every entry that names a twin."""
    load()
    return ((f, REGISTRY[f.twin]) for f in REGISTRY.values() if f.twin)

"""The one-line load errors: their fixed texts, the reading of Keras's exceptions, and
the silencing of Keras's uninformative load-time warnings."""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

from maskviz.errors import MaskvizError, cut

if TYPE_CHECKING:
    from maskviz.loading.config import _Entry
_SHOWN_LIMIT = 160  # characters of a path quoted in a message
_EXPECTED_FILE = "Expected a path to a .keras or .h5 model file"
_READABLE = "Expected a readable model file; check the path and its permissions"
_CUSTOM_FIX = "--custom-objects module.py"
_NOT_IMPORTED = "maskviz does not import '{package}' because a file names it"
_LAMBDA_EXPECTED = (
    "Expected a model without stored code; if you trust the file, pass --unsafe "
    "(or replace the Lambda with a registered custom layer)."
)
_OUTSIDE_EXPECTED = (
    "Expected a model that carries everything it needs in the file; if you trust the file "
    "and what it points to, pass --unsafe."
)
# Keras warnings that say nothing useful to someone inspecting masks: the mask ones are
# what maskviz itself reports (properly located), the others are about training state.
_SILENCED_WARNINGS = (
    r"Layer '.*' \(of type .*\) was passed an input with a mask attached to it",
    r"Skipping variable loading for optimizer",
    r"`compile\(\)` was not called as part of model loading",
)
_SILENCED_LOGS = re.compile(
    r"Compiled the loaded model, but the compiled metrics|"
    r"No training configuration found in the save file|"
    r"Error when creating the weights of optimizer|"
    r"Error in loading the saved optimizer state"
)


def _brief(e: BaseException, limit: int = 160) -> str:
    """``ExcType: first line of the message``, without Keras's config dumps, on one line."""
    text = str(e)
    if isinstance(e, SyntaxError) and e.msg:
        text = f"{e.msg} (line {e.lineno})"
    if "Exception encountered: " in text:
        text = text.rsplit("Exception encountered: ", 1)[1]
    for marker in (" Full object config", "\n\nconfig=", " Received: config="):
        text = text.split(marker, 1)[0]
    text = cut(" ".join(text[: 4 * limit].split()), limit)
    name = type(e).__name__
    return f"{name}: {text}" if text else name


def _fail(shown: str, what: str, expected: str) -> NoReturn:
    """Raises the one-line load error (`shown` and `what` are already escaped)."""
    raise MaskvizError(f"Cannot load '{shown}': {what}. {expected}")


def _os_reason(e: OSError) -> str:
    """The reason of an OSError without its (possibly huge, already shown) file name."""
    return e.strerror or type(e).__name__


class _DropLogs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _SILENCED_LOGS.search(record.getMessage())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silences Keras's uninformative load-time warnings (see ``_SILENCED_WARNINGS``)."""
    absl = logging.getLogger("absl")
    drop = _DropLogs()
    absl.addFilter(drop)
    try:
        with warnings.catch_warnings():
            for pattern in _SILENCED_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        absl.removeFilter(drop)


def _messages(e: BaseException) -> Iterator[str]:
    """The messages of `e` and of the exceptions it wraps (Keras re-raises without ``from``,
    and embeds the inner message after "Exception encountered: ")."""
    seen: set[int] = set()
    todo: list[BaseException] = [e]
    while todo:
        exc = todo.pop(0)
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        text = str(exc)
        yield text
        if "Exception encountered: " in text:
            yield text.rsplit("Exception encountered: ", 1)[1]
        todo.extend(x for x in (exc.__cause__, exc.__context__) if x is not None)


_NOT_FOUND = (
    re.compile(r"Could not locate (class|function) '([^']+)'"),
    re.compile(r"Could not deserialize (class|function) '([^']+)' because its parent module"),
    re.compile(r"Unknown ([a-z ]+): '([^']+)'"),  # legacy .h5 loading
)


def _explain_known_failure(
    e: BaseException,
    shown: str,
    kind: str,
    entries: list[_Entry],
    import_errors: dict[str, str],
    refused: set[str] = frozenset(),
) -> MaskvizError | None:
    for text in _messages(e):
        if "Requested the deserialization of a" in text and "lambda" in text:
            return MaskvizError(
                f"Cannot load '{shown}': it contains Python code (a lambda) that would run on "
                f"loading, which safe mode refuses. {_LAMBDA_EXPECTED}"
            )
        for pattern in _NOT_FOUND:
            match = pattern.search(text)
            if match and kind == "h5" and _is_keras_op(match.group(2)):
                return MaskvizError(
                    f"Cannot load '{shown}': it contains the Keras operation "
                    f"'{cut(match.group(2), 80)}' (Keras 3 saves mask computations and "
                    "keras.ops calls as graph operations), which Keras cannot rebuild from an .h5 "
                    "file. Expected a .keras file for this model; re-save it with "
                    "model.save('model.keras')."
                )
            if match:
                return _unknown_class(
                    shown, match.group(1), match.group(2), entries, import_errors, refused
                )
    return None


def _is_keras_op(class_name: str) -> bool:
    """Whether `class_name` is a Keras operation (``NotEqual`` for ``keras.ops.not_equal``)."""
    import keras

    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()
    return callable(getattr(keras.ops, snake, None))


def _unknown_class(
    shown: str,
    kind: str,
    name: str,
    entries: list[_Entry],
    import_errors: dict[str, str],
    refused: set[str] = frozenset(),
) -> MaskvizError:
    kind = "function" if kind == "function" or kind.endswith("function") else "class"
    entry = next(
        (
            x
            for x in entries
            if name in (x.class_name, x.registered_name)
            or (x.class_name == "function" and x.config == name)
        ),
        None,
    )
    short = cut(name.split(">", 1)[-1], 80)
    details = []
    if entry is not None:
        if entry.registered_name and entry.registered_name not in (short, "function"):
            details.append(f"registered as '{cut(entry.registered_name, 80)}'")
        if entry.module and entry.module not in ("builtins", "__main__"):
            details.append(f"saved from module '{cut(entry.module, 80)}'")
    packages = (
        {p.split(".", 1)[0] for p in (entry.module, entry.registered_package) if p}
        if entry is not None
        else set()
    )
    failed = [
        f"importing '{p}' raised {import_errors[p]}" for p in sorted(packages & set(import_errors))
    ]
    detail = f" ({'; '.join(details + failed)})" if details or failed else ""
    not_imported = sorted(packages & set(refused))
    if not_imported:
        package = cut(not_imported[0], 60)
        return MaskvizError(
            f"Cannot load '{shown}': it uses the custom {kind} '{short}'{detail}; "
            f"{_NOT_IMPORTED.format(package=package)}. Expected its module: pass "
            f"--custom-objects {package}, or --allow-import {package} if you trust it, "
            "or --unsafe."
        )
    return MaskvizError(
        f"Cannot load '{shown}': it uses the custom {kind} '{short}'{detail}, which is not "
        "defined in this process. Expected the module that defines it; pass it with "
        f"{_CUSTOM_FIX} (a .py file or a module name)."
    )


def _generic_failure(e: BaseException, shown: str, keras_version: str) -> MaskvizError:
    return MaskvizError(
        f"Cannot load '{shown}': Keras could not rebuild the model ({_brief(e)}). Expected a "
        f"model that Keras {keras_version} can load; check the Keras version that saved it, "
        f"and pass any custom layers with {_CUSTOM_FIX}."
    )

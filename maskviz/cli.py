"""The `maskviz` command line: a thin typer app over the Python API.

Exit codes: 0 no finding at or above `--fail-on`; 1 there are (or a fix could not
be verified); 2 a usage or load error (one line on stderr, never a traceback);
130 interrupted (one line). `main()` turns click's usage errors into one line too, and
an unexpected exception into one line naming it (`MASKVIZ_DEBUG=1` shows the traceback).

Nothing heavy is imported at module level: `maskviz --help`, `maskviz rules` and
`maskviz explain` never import Keras or TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="maskviz",
    help="See, check and fix masks in Keras models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Format(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"
    never = "never"


_BACKENDS = ("tensorflow", "jax", "torch")


def _configured_backend() -> str | None:
    """The backend the user chose: `KERAS_BACKEND`, else `backend` in `keras.json`
    (`$KERAS_HOME/keras.json`, else `~/.keras/keras.json`), as Keras itself reads them."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    import json

    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as f:
            backend = json.load(f).get("backend")
    except (OSError, ValueError, AttributeError):
        return None
    return backend if isinstance(backend, str) and backend else None


def _choose_backend() -> str | None:
    """A backend to set only when the user configured none and Keras's default
    (TensorFlow) is not installed: the first installed of jax, torch. `None` leaves
    Keras to its own choice."""
    import importlib.util

    if _configured_backend() is not None:
        return None
    installed = [b for b in _BACKENDS if importlib.util.find_spec(b) is not None]
    if not installed or installed[0] == "tensorflow":
        return None
    return installed[0]


def _quiet_backend() -> None:
    """Imports Keras (and its backend) with the backend's start-up logging hidden.

    TensorFlow's C++ logs ("All log messages before absl::InitializeLog()...",
    "Could not find cuda drivers") ignore `TF_CPP_MIN_LOG_LEVEL`, so file
    descriptor 2 is pointed elsewhere while Keras imports, and shown only if the
    import fails.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    backend = _choose_backend()
    if backend is not None:
        os.environ["KERAS_BACKEND"] = backend
    if "keras" in sys.modules:
        return
    try:
        with _native_stderr_hidden(replay=False) as captured:
            import keras  # noqa: F401
    except Exception as e:
        captured.seek(0)
        detail = captured.read().decode(errors="replace").strip().splitlines()
        last = f" ({detail[-1]})" if detail else ""
        raise _fail(
            f"Cannot import Keras: {type(e).__name__}: {e}{last}. Expected keras 3 with "
            "its backend installed: `pip install keras tensorflow`."
        ) from None


@contextlib.contextmanager
def _native_stderr_hidden(replay: bool = True) -> Iterator[Any]:
    """Points file descriptor 2 at a temporary file for the block (native libraries
    log there, ignoring Python's settings). What was written is shown again when the
    block raises something other than `MaskvizError`, if `replay`."""
    import tempfile

    from .errors import MaskvizError

    captured = tempfile.TemporaryFile()
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(captured.fileno(), 2)
    failed = False
    try:
        yield captured
    except MaskvizError:
        raise
    except BaseException:
        failed = True
        raise
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if failed and replay:
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"maskviz: error: {_one_line(message)}", err=True)
    return typer.Exit(code)


def _one_line(message: str, limit: int = 2000) -> str:
    """`message` on one line, control characters escaped, at most `limit` characters."""
    from .errors import cut

    return cut(message, limit)


def _parse_mask_inputs(values: list[str] | None) -> dict[str, str]:
    pairs = {}
    for v in values or []:
        if "=" not in v:
            raise _fail(
                f"--mask-input takes MASK=DATA (e.g. padding_mask=token_ids). Received: {v!r}."
            )
        m, d = v.split("=", 1)
        pairs[m.strip()] = d.strip()
    return pairs


def _load(
    path: Path,
    custom_objects: list[str] | None,
    unsafe: bool,
    allow_imports: list[str] | None = None,
):
    _quiet_backend()
    import warnings

    from .errors import MaskvizError
    from .loading import load_model

    try:
        # A backend's native libraries can load during loading (TensorFlow under an
        # `.h5` file on torch) and log to file descriptor 2: hidden like at import.
        with _native_stderr_hidden(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            model = load_model(
                str(path),
                unsafe=unsafe,
                custom_objects=custom_objects or None,
                allow_imports=allow_imports or None,
            )
    except MaskvizError as e:
        raise _fail(str(e)) from None
    for w in caught:
        text = str(w.message)
        if text.startswith("maskviz:"):
            typer.echo(_one_line(text.replace("maskviz:", "maskviz: warning:", 1)), err=True)
    return model


def _exit_code(report, fail_on: FailOn) -> int:
    if fail_on == FailOn.never:
        return 0
    return 1 if report.at_or_above(fail_on.value) else 0


@app.command()
def inspect(
    path: Annotated[Path, typer.Argument(help="A .keras or .h5 model file.")],
    data: Annotated[
        Path | None,
        typer.Option(help="Samples (.npz, keys = input names) to use instead of the probe."),
    ] = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="Report format.")] = Format.text,
    graph: Annotated[
        Path | None, typer.Option(help="Also draw the annotated graph (.svg, .png, .pdf, .dot).")
    ] = None,
    depth: Annotated[
        int | None, typer.Option(help="With --graph: collapse nested models below this depth.")
    ] = None,
    fail_on: Annotated[
        FailOn, typer.Option(help="Exit 1 when a finding has at least this severity.")
    ] = FailOn.error,
    custom_objects: Annotated[
        list[str] | None,
        typer.Option(help="A .py file or module defining the model's custom layers (repeatable)."),
    ] = None,
    mask_input: Annotated[
        list[str] | None,
        typer.Option(help="An explicit mask input and the input it masks: MASK=DATA (repeatable)."),
    ] = None,
    oracle: Annotated[bool, typer.Option(help="Run the padding-leak oracle.")] = True,
    loss: Annotated[
        str | None,
        typer.Option(
            help="A Keras loss name for the loss-and-gradient check (default: the compiled loss)."
        ),
    ] = None,
    unsafe: Annotated[
        bool, typer.Option(help="Allow the file to run code it carries (Lambda layers).")
    ] = False,
    allow_import: Annotated[
        list[str] | None,
        typer.Option(
            help="A package the file may make maskviz import, on top of the Keras ecosystem "
            "ones (keras_hub, keras_nlp, ...) (repeatable)."
        ),
    ] = None,
) -> None:
    """Trace a saved model on padded probe data and report its mask problems."""
    pairs = _parse_mask_inputs(mask_input)
    if graph is not None:
        _check_output_dir(graph, "--graph")
    model = _load(path, custom_objects, unsafe, allow_import)
    import maskviz

    from .errors import MaskvizError

    try:
        report = maskviz.inspect(
            model,
            data=str(data) if data else None,
            oracle=oracle,
            mask_inputs=pairs or None,
            loss=loss,
        )
    except MaskvizError as e:
        raise _fail(str(e)) from None
    if format == Format.json:
        typer.echo(report.to_json())
    elif format == Format.sarif:
        typer.echo(report.to_sarif())
    else:
        typer.echo(report.to_text(width=_width(), color=_color()), nl=False)
    if graph is not None:
        try:
            written = report.render(str(graph), depth=depth)
        except MaskvizError as e:
            raise _fail(str(e)) from None
        except OSError as e:
            raise _fail(
                f"Cannot write the graph to '{graph}': {e.strerror or type(e).__name__}. "
                "Expected a writable path ending in .svg, .png, .pdf or .dot."
            ) from None
        typer.echo(f"graph written to {written}", err=True)
    raise typer.Exit(_exit_code(report, fail_on))


@app.command()
def fix(
    path: Annotated[Path, typer.Argument(help="A .keras or .h5 model file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the fixed model.")],
    data: Annotated[
        Path | None,
        typer.Option(help="Samples (.npz, keys = input names) to use instead of the probe."),
    ] = None,
    mask_input: Annotated[
        list[str] | None,
        typer.Option(help="An explicit mask input and the input it masks: MASK=DATA (repeatable)."),
    ] = None,
    loss: Annotated[
        str | None,
        typer.Option(help="The loss the model trains with (a Keras loss name)."),
    ] = None,
    unsafe_fixes: Annotated[
        bool, typer.Option(help="Also keep repairs that change outputs on unpadded rows.")
    ] = False,
    custom_objects: Annotated[
        list[str] | None,
        typer.Option(help="A .py file or module defining the model's custom layers (repeatable)."),
    ] = None,
    unsafe: Annotated[
        bool, typer.Option(help="Allow the file to run code it carries (Lambda layers).")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="Write the model even when nothing was fixed.")
    ] = False,
) -> None:
    """Search verified repairs for the findings, save the repaired model, re-verify it."""
    pairs = _parse_mask_inputs(mask_input)
    if data is not None and not data.is_file():
        raise _fail(f"The --data file does not exist. Received: --data {str(data)!r}.")
    model = _load(path, custom_objects, unsafe)
    from .errors import MaskvizError
    from .fixes import fix_model_file

    if loss is not None:
        import keras

        try:
            keras.losses.get(loss)
        except (ValueError, TypeError):
            raise _fail(
                f"Unknown loss. Received: --loss {loss!r}. Expected a Keras loss name such "
                "as `sparse_categorical_crossentropy`."
            ) from None
    try:
        result = fix_model_file(
            model,
            str(output),
            unsafe_fixes=unsafe_fixes,
            force=force,
            data=str(data) if data else None,
            mask_inputs=pairs or None,
            loss=loss,
        )
    except MaskvizError as e:
        raise _fail(str(e)) from None
    typer.echo(result.to_text(), nl=False)
    raise typer.Exit(0 if result.ok else 1)


@app.command()
def explain(
    rule: Annotated[str, typer.Argument(help="A rule id (MV101) or name (mask-dropped).")],
) -> None:
    """Print a rule's documentation."""
    from .rules import get_rule

    try:
        r = get_rule(rule)
    except KeyError as e:
        raise _fail(str(e.args[0])) from None
    typer.echo(f"# {r.name} ({r.id})\n\nDefault severity: {r.severity.value}\n\n{r.doc}")


@app.command("rules")
def rules_cmd() -> None:
    """List the rules."""
    from .rules import all_rules

    for r in all_rules():
        typer.echo(f"{r.id}  {r.name:<26} {r.severity.value:<8} {r.summary}")


@app.command()
def demo(
    graph_dir: Annotated[
        Path | None, typer.Option(help="Also draw each sample's graph (SVG) into this folder.")
    ] = None,
) -> None:
    """Inspect the bundled sample models, one per mask bug (the zero-setup first run)."""
    _quiet_backend()
    import maskviz
    from maskviz.samples import SAMPLES, sample_path

    from .errors import MaskvizError
    from .loading import load_model

    if graph_dir is not None:
        try:
            graph_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _fail(
                f"Cannot create --graph-dir '{graph_dir}': {e.strerror or type(e).__name__}. "
                "Expected a folder maskviz can write to."
            ) from None
    failed = 0
    for name, (_filename, description, kind) in SAMPLES.items():
        typer.echo(f"\n=== {name}: {description} [{kind}]")
        try:
            model = load_model(str(sample_path(name)))
        except MaskvizError as e:  # e.g. a Keras older than the one that saved the samples
            typer.echo(f"maskviz: {e}", err=True)
            failed += 1
            continue
        try:
            report = maskviz.inspect(model)
        except MaskvizError as e:
            raise _fail(str(e)) from None
        ids = report.rule_ids
        typer.echo(
            f"findings: {', '.join(ids) if ids else 'none'}"
            + "".join(
                f"\n  {f.rule} {f.severity.value} at {f.path}: {f.message}" for f in report.findings
            )
        )
        if graph_dir is not None:
            report.render(str(graph_dir / f"{name}.svg"))
    if failed:
        import keras

        typer.echo(
            f"maskviz: {failed} sample(s) could not be loaded by Keras {keras.__version__}. "
            "Expected the Keras range in maskviz's requirements; upgrade Keras.",
            err=True,
        )
        raise typer.Exit(2)
    typer.echo("\nNext: `maskviz inspect YOUR_MODEL.keras`, `maskviz explain MV102`.")


def _width() -> int:
    """The terminal's width, or `COLUMNS`, or 140 when piped (CI logs)."""
    import shutil

    return max(100, shutil.get_terminal_size((140, 24)).columns)


def _color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _check_output_dir(path: Path, option: str) -> None:
    """A usage error (exit 2) before any work when `path`'s folder does not exist."""
    folder = path.parent
    try:
        ok = folder.is_dir()
    except OSError:
        ok = False
    if not ok:
        raise _fail(
            f"Cannot write {option} '{path}': the folder '{folder}' does not exist. Expected "
            "a path in an existing folder; create it first."
        )


def _click_exceptions():
    """The exception classes of the click that typer runs on (typer >= 0.20 vendors one)."""
    try:
        from typer._click import exceptions
    except ImportError:  # older typer: plain click
        from click import exceptions
    return exceptions


def main() -> None:
    """The `maskviz` entry point: exit codes 0/1/2 and 130, one line on stderr for every
    error, never a traceback (set `MASKVIZ_DEBUG=1` to see one for an unexpected error)."""
    errors = _click_exceptions()
    exits = tuple({typer.Exit, getattr(errors, "Exit", typer.Exit)})
    aborts = tuple({typer.Abort, getattr(errors, "Abort", typer.Abort), KeyboardInterrupt})
    try:
        code = app(standalone_mode=False)
    except errors.NoArgsIsHelpError as e:
        typer.echo(e.ctx.get_help() if e.ctx else "")
        code = 2
    except errors.UsageError as e:
        hint = f" Try '{e.ctx.command_path} --help'." if e.ctx else ""
        typer.echo(f"maskviz: error: {_one_line(e.format_message())}{hint}", err=True)
        code = 2
    except exits as e:
        code = e.exit_code
    except aborts:
        typer.echo("maskviz: interrupted.", err=True)
        code = 130
    except errors.ClickException as e:
        typer.echo(f"maskviz: error: {_one_line(e.format_message())}", err=True)
        code = e.exit_code or 2
    except Exception as e:  # a bug in maskviz or Keras: one line, not a traceback
        if os.environ.get("MASKVIZ_DEBUG") == "1":
            raise
        typer.echo(
            f"maskviz: error: unexpected {type(e).__name__}: {_one_line(str(e), 300)}. "
            "Expected no internal error: please report it (MASKVIZ_DEBUG=1 shows the traceback).",
            err=True,
        )
        code = 2
    code = code if isinstance(code, int) else 0
    if code == 130:  # typer turns KeyboardInterrupt into a silent exit 130
        typer.echo("maskviz: interrupted.", err=True)
    sys.exit(code)

"""The root click group and the error policy every command shares.

Data goes to stdout, diagnostics to stderr. A `zoo.errors.ZooError` becomes one line
``zoo: error: ...`` and its exit code (2 for usage errors); Ctrl-C exits 130. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import warnings
from typing import Any

import click
from rich.console import Console

from zoo import __version__
from zoo.errors import UsageError, ZooError
from zoo.fileio import nan_to_null
from zoo.text import printable

#: Terminal widths genzoo lays out for; COLUMNS outside them is not a width a person has.
MIN_COLUMNS, MAX_COLUMNS = 40, 10_000


def sane_columns(environ: Any = os.environ) -> None:
    """Fix ``COLUMNS`` in ``environ`` before any console reads it: rich prints nothing at
    ``COLUMNS=0`` and garbles tables at 5. A value that is not a number, is <= 0 or is absurdly large
    is dropped (the terminal's own width is used, else 80); a small one is raised to MIN_COLUMNS."""
    text = environ.get("COLUMNS")
    if text is None:
        return
    try:
        width = int(text.strip())
    except ValueError:
        width = 0
    if width <= 0 or width > MAX_COLUMNS:
        del environ["COLUMNS"]
    elif width < MIN_COLUMNS:
        environ["COLUMNS"] = str(MIN_COLUMNS)


class _DataStdout:
    """Where a command's data goes: the stream that was ``sys.stdout`` when `run` began, even
    while ``sys.stdout`` points at stderr so that plugin code cannot print into JSON or CSV."""

    stream: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream if self.stream is not None else sys.stdout, name)


data_stdout: Any = _DataStdout()
sane_columns()  # the consoles below read COLUMNS when they are made
stdout = Console(soft_wrap=True, file=data_stdout)
stderr = Console(stderr=True, soft_wrap=True)


def echo_json(data: Any) -> None:
    """Machine output: strict JSON on stdout (NaN and infinities become null), no colour or wrapping."""
    click.echo(json.dumps(nan_to_null(data), indent=2, sort_keys=False, default=str, allow_nan=False), file=data_stdout)


def machine_output(args: list[str]) -> bool:
    """Whether ``args`` ask for output a program reads (``--json``, ``--format`` other than table)."""
    for i, arg in enumerate(args):
        if arg == "--json" or arg.startswith("--format=") and arg != "--format=table":
            return True
        if arg == "--format" and i + 1 < len(args) and args[i + 1] != "table":
            return True
    return False


def warn(message: str) -> None:
    """One warning line on stderr; ``message`` is plain text (never parsed as markup, control
    characters shown escaped), so plugin errors and file names cannot break or restyle it."""
    from rich.text import Text

    stderr.print(Text.assemble(("zoo: warning:", "yellow"), " ", printable(message)), highlight=False)


def announce(message: str) -> None:
    """Say what a command is about to do, before its heavy imports (torch and the metrics stack
    take seconds to load), so a person at a terminal sees it start at once. One dim line on stderr,
    only when stderr is a terminal: scripts, logs and one-line errors see nothing extra."""
    from rich.text import Text

    if stderr.is_terminal:
        stderr.print(Text(f"zoo: {printable(message)}", style="dim"), highlight=False)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """``warnings.showwarning`` for the CLI: a warning (an image that was skipped, a corrupt cache
    file) is one ``zoo: warning:`` line, not Python's ``/path/x.py:123: ImageReadWarning: ...`` pair."""
    text = str(message)
    own = (getattr(category, "__module__", "") or "").startswith("zoo")  # genzoo's and its plugins' (zoo_*)
    warn(text if own else f"{category.__name__}: {text}")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", "-V", package_name="genzoo", prog_name="zoo")
@click.option("--strict-plugins", is_flag=True, envvar="ZOO_STRICT_PLUGINS", help="Fail on any plugin error (for plugin CI).")
def cli(strict_plugins: bool) -> None:
    """genzoo: train, sample, evaluate and benchmark image generators."""
    # Applied in run() before plugins load; declared here for --help.


def registry():  # noqa: ANN201 - a small accessor commands share
    """The plugin registry, with broken plugins and plugin warnings reported once on stderr."""
    from zoo.registry import get_registry

    reg = get_registry()
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx else None
    if root is not None and not root.meta.get("zoo.plugin_warnings"):
        root.meta["zoo.plugin_warnings"] = True
        for record in reg.errors:
            warn(f"plugin {record.name!r} ({record.distribution or record.module}) skipped: {record.error}")
        for record in reg.plugins.values():
            for message in record.warnings:
                warn(f"plugin {record.name!r} ({record.distribution or record.module}): {message}")
        for message in reg.warnings:
            warn(message)
    return reg


def _add_plugin_commands() -> None:
    from zoo.registry import get_registry

    # Loads plugin modules only: no hook but this one runs, no torch import. A command name that
    # is taken (zoo train, another plugin's) is refused and reported by zoo plugins.
    get_registry(defer_strict=True).add_commands(cli)  # strict mode raises here, listing every problem


#: The arguments of the command being run (after ``zoo``): a command can name itself, e.g. the
#: command that resumes an interrupted ``zoo bench``.
invocation: list[str] = []


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code, turning genzoo errors into one line."""
    args = sys.argv[1:] if argv is None else argv
    invocation[:] = list(args)
    if any("\x00" in a for a in args):  # a shell cannot pass one; a Python caller can
        stderr.print("zoo: error: arguments must not contain NUL bytes", highlight=False, markup=False)
        return 2
    if "--strict-plugins" in args:  # plugins load before click parses options
        os.environ["ZOO_STRICT_PLUGINS"] = "1"
    sane_columns()  # for click's help and any console made later
    if not _stdout_open():  # `zoo ... >&-`: every print would be a traceback; say it once instead
        stderr.print("zoo: error: standard output is closed (redirect it to a file or /dev/null)",
                     highlight=False, markup=False)
        return 1
    from zoo.guard import user_interrupts

    _DataStdout.stream = sys.stdout
    # Plugin code prints to stderr while a program reads stdout (its import always: see _run).
    quiet = contextlib.redirect_stdout(sys.stderr) if machine_output(args) else contextlib.nullcontext()
    try:
        with warnings.catch_warnings(), user_interrupts(), quiet:
            warnings.showwarning = _show_warning
            return _run(args, argv)
    finally:
        _DataStdout.stream = None


def _stdout_open() -> bool:
    """Whether standard output can be written: Python sets ``sys.stdout`` to ``None`` when file
    descriptor 1 is closed at start-up; a descriptor closed later fails ``fstat``."""
    if sys.stdout is None:
        return False
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, io.UnsupportedOperation):  # a replaced stdout (a capture): writable
        return True
    except ValueError:  # the file object was closed
        return False
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _run(args: list[str], argv: list[str] | None) -> int:
    import signal

    from zoo.errors import Terminated
    from zoo.guard import fault_message, signal_raises

    try:
        from zoo.cpuprofile import cpu_profile

        cpu_profile()  # a wrong ZOO_CPU_PROFILE is one line for every command, not only training
        with contextlib.redirect_stdout(sys.stderr):  # what a plugin prints at import is not data
            _add_plugin_commands()
        # Without standalone mode click returns (not raises) the code of a ctx.exit / Exit.
        # SIGTERM unwinds like Ctrl-C (a half-written output is removed), not a silent death; a
        # command that handles it itself (training: a checkpoint first) installs its own meanwhile.
        with signal_raises(signal.SIGTERM, Terminated):
            code = cli.main(args=argv, prog_name="zoo", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except (click.Abort, SystemExit, KeyboardInterrupt, MemoryError) as exc:  # from plugin code, or a real Ctrl-C
        # click turns a KeyboardInterrupt inside a command into Abort: look at what caused it.
        cause = exc.__cause__ if isinstance(exc, click.Abort) else exc
        fault = fault_message(cause) if cause is not None else None
        if fault is None:  # Ctrl-C or SIGTERM (zoo.errors.UserInterrupt, Terminated)
            signum = int(getattr(cause, "signum", signal.SIGINT))
            stderr.print("zoo: terminated" if signum == signal.SIGTERM else "zoo: interrupted", highlight=False)
            return 128 + signum
        stderr.print(f"zoo: error: {fault}", highlight=False, markup=False)
        return 1
    except click.ClickException as exc:
        stderr.print(f"zoo: error: {exc.format_message()}", highlight=False, markup=False)
        return 2 if isinstance(exc, click.UsageError) else exc.exit_code
    except UsageError as exc:
        stderr.print(f"zoo: error: {exc}", highlight=False, markup=False)
        return exc.exit_code
    except ZooError as exc:
        stderr.print(f"zoo: error: {exc}", highlight=False, markup=False)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except OSError as exc:  # an unwritable path, a full disk: the environment, not a bug
        where = f": {exc.filename}" if exc.filename else ""
        stderr.print(f"zoo: error: {exc.strerror or exc}{where}", highlight=False, markup=False)
        return 1
    except Exception as exc:  # a library's wrapper around a full disk (torch: RuntimeError)
        from zoo.fileio import no_space_cause, no_space_reason

        cause = no_space_cause(exc)
        if cause is None:
            raise
        where = f" writing {cause.filename}" if cause.filename else ""
        stderr.print(f"zoo: error: {no_space_reason(cause)}{where}", highlight=False, markup=False)
        return 1
    finally:
        stream = data_stdout.stream if data_stdout.stream is not None else sys.stdout
        if stream is not None:  # closed or full: the command's own error was already said
            with contextlib.suppress(OSError, ValueError):
                stream.flush()

"""The ``router-tuner`` command line: one entry point that wires the packages together.

Each command lives in its owner's ``cli`` module, which exposes ``add_arguments(parser)`` and
``run(args) -> exit code``. Only the module of the command being run is imported (the overview in
``--help`` comes from ``COMMANDS``), so ``router-tuner config check`` does not pay for river, MLflow or
ccxt. To add a command, add one line to ``COMMANDS``.

Failures are handled here, once: whatever a command raises ends in one line on stderr,
``router-tuner COMMAND: [what PATH: ]problem; what to do``, and an exit code — ``2`` for bad input (an
argument, a configuration, an intents line, a file that is not what it should be, a place that cannot be
written), ``1`` for a runtime failure (a lock held by another process, a full disk, a venue or MLflow
refusing), ``130`` for Ctrl-C, ``141`` (quietly) when stdout's reader went away. ``--debug`` (before the
command) re-raises instead, with the traceback. Commands raise :class:`BadInput` for input they refuse and
:class:`RunFailure` for a run that cannot go on, and wrap file access in :func:`reading` so the line names the
file (SQLite errors do not). Under a command's ``--json`` a failure is still this one plain line on stderr:
stdout carries only results.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import select
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

BAD_INPUT = 2
RUNTIME_FAILURE = 1
INTERRUPTED = 130
READER_GONE = 141
"""128 + SIGPIPE, as a shell reports a command whose stdout reader went away (``| head``, ``| true``)."""

# command name -> (module with add_arguments/run, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("cli.config", "configuration tools: `config check [DIR]`, `config init DIR`"),
    "policy": ("cli.policy",
               "policy versions in MLflow: `policy list|show|promote|rollback|go-live` (promote is OPE-gated)"),
    "record": ("cli.record", "record live quotes and trades into Parquet tapes (ccxt.pro)"),
    "journal": ("cli.journal", "inspect a journal: `journal count|export`"),
    "ope": ("cli.ope", "score a candidate policy on a journal's logged router events"),
    "ope-dataset": ("cli.ope_dataset", "score a candidate arm on a partitioned dataset, on one core or Ray"),
    "simulate": ("cli.simulate", "the main job: replay markets, compare routing policies, write the report"),
    "sweep": ("cli.sweep", "learner settings x seeds x symbols x data as tasks, on one core or Ray (resumable)"),
    "live": ("cli.live", "run the executor on an intents file: `live --venue binanceusdm --intents FILE` "
                         "(paper unless --live; ends with a summary of what it routed and vetoed)"),
    "health": ("cli.health", "print the executor's latest health snapshot and alerts"),
}


RESULT_COMMANDS = frozenset({"policy", "journal", "health"})
"""Commands whose work is the result they print: started with stdout closed (``>&-``, where Python's ``sys.stdout`` is
``None`` and ``print`` drops everything silently) they are refused before they open anything, exit 2, where they
printed nothing and exited 0 (``policy promote`` moved the champion with no word)."""


class BadInput(Exception):
    """Input a command refuses (an argument, a file's content): exit 2 with this message."""


class RunFailure(Exception):
    """A run that cannot start or go on for a reason outside its input (a venue or an account that refuses,
    a reconciliation that does not match): exit 1 with this message."""


@contextmanager
def reading(what: str, path: object) -> Iterator[None]:
    """Name ``what path`` in the failure line of any error raised inside (``journal var/x.sqlite: ...``).

    Nested, the innermost name wins: it is the file the failing step was about.
    """
    try:
        yield
    except Exception as error:
        if not getattr(error, "__notes__", None):
            error.add_note(f"{what} {path}")
        raise


def print_result(text: str) -> None:
    """Print a command's result on stdout; a failure to write it (``> /dev/full``, a full disk) names standard
    output. Why: ``journal count`` printed inside the journal's :func:`reading`, so ``journal count J > /dev/full``
    ended "journal J: No space left on device", blaming the journal (and its disk) for stdout's device. A reader
    gone (``| head``) stays quiet (``main`` sees the BrokenPipeError whatever its notes)."""
    try:
        print(text)
    except OSError as error:
        error.add_note("standard output")
        raise


def probe_writable(directory: Path) -> None:
    """Create ``directory`` and write a scratch file in it, so an unwritable output fails before the work."""
    with reading("output directory", directory):
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass


_SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside a database (``J-wal`` holds a WAL journal's committed pages until checkpointed)."""


def resolved_path(flag: str, path: Path) -> Path:
    """``path`` resolved; a symbolic link loop on its way is bad input naming the option (``Path.resolve`` raised
    "RuntimeError: Symlink loop", which reached the user as an unexpected error, exit 1)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as error:
        raise BadInput(f"{flag} {path}: a symbolic link on its way leads back to itself ({error}); give a path "
                       "without the loop") from None


def distinct_files(roles: Iterable[tuple[str, Path]]) -> None:
    """Refuse one file given for two roles (``--journal`` and ``--out``), or for one role's SQLite sidecar: the
    writer of one role would replace the other's file (a Parquet export written over its own journal, or over the
    journal's ``-wal`` file, loses records)."""
    given = [(flag, path, resolved_path(flag, path)) for flag, path in roles]
    seen: dict[Path, str] = {}
    for flag, path, resolved in given:
        if resolved in seen:
            raise BadInput(f"{seen[resolved]} and {flag} are the same file ({path}): each needs its own file")
        seen[resolved] = flag
    for flag, path, resolved in given:
        for other, owner in seen.items():
            suffix = resolved.name.removeprefix(other.name)
            if owner != flag and resolved.parent == other.parent and suffix in _SQLITE_SIDECARS:
                raise BadInput(f"{flag} {path} is where SQLite keeps the {suffix} file of {owner}: writing it "
                               f"would corrupt {owner}; choose another file")


MAX_WORKERS = 1024
"""More worker processes than any machine here has cores; a larger number is a typo."""


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in ``[low, high]`` (argparse turns the error into one line, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
        return value
    return parse


def finite_number(low: float, high: float, *, above_low: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in ``[low, high]`` (``(low, high]`` with ``above_low``); ``nan``,
    ``inf`` and ``1e400`` are refused, so a typo cannot switch a limit off or overflow a conversion later."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        inside = (low < value if above_low else low <= value) and value <= high  # false for NaN
        if not inside:
            lower = f"above {low:g}" if above_low else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"must be a number {lower} and at most {high:g}, got {text}")
        return value
    return parse


def model_prefix_option(prefix: str) -> str:
    """``--prefix``, a registered model name prefix, checked (``policy``, ``ope``); ``BadInput`` for a blank one or
    one with a quote, which would break MLflow's model search filter."""
    if not prefix.strip() or "'" in prefix:
        raise BadInput(f"--prefix {prefix!r}: not a registered model name prefix")
    from router_tuner.config.text import visible_text_problem

    if (problem := visible_text_problem(prefix)) is not None:  # a newline split the "no policy versions" line in two,
        raise BadInput(f"--prefix {prefix!r}: {problem}")  # a leading space named models nobody registered, unseen
    return prefix


def add_tracking_uri(parser: argparse.ArgumentParser) -> None:
    """``--tracking-uri``, the MLflow store of every command that opens one (``simulate``, ``sweep``, ``ope``,
    ``policy``, ``live``), resolved by :func:`tuner.registry.resolve_tracking_uri`."""
    parser.add_argument("--tracking-uri", default=None, type=path_text,
                        help="MLflow tracking URI (overrides MLFLOW_TRACKING_URI and tuner.json mlflow.tracking_uri; "
                             "default: sqlite:///var/mlflow.db in the current folder)")


def refuse_missing_store(configured: str | None, override: str | None) -> None:
    """``BadInput`` when the store's URI names a SQLite file that does not exist (or is empty), before anything is
    created (``policy``, and ``ope`` given an MLflow reference). Why: both read versions that some run registered, and
    opening the URI created a new empty store (and its folders) wherever a typo or the wrong working folder pointed:
    `policy list` then said "no policy versions … add --simulation", exit 0, show/promote/rollback "no policy
    version", and `ope --candidate BTCUSDT@champion` "no policy version", each leaving the new store behind."""
    from router_tuner.tuner.registry import choose_tracking_uri, missing_sqlite_store

    uri = choose_tracking_uri(configured, override=override)
    if (database := missing_sqlite_store(uri)) is not None:
        state = "is empty" if database.exists() else "does not exist"
        raise BadInput(f"MLflow store {uri}: {database} {state}, so no policy was ever registered there (nothing was "
                       "created); point --tracking-uri, MLFLOW_TRACKING_URI or tuner.json mlflow.tracking_uri at the "
                       "store `simulate` or `live --policy-source tuner` registered into (default "
                       "sqlite:///var/mlflow.db in the folder they ran in)")


def refuse_tracking_uri_without_mlflow(args: argparse.Namespace) -> None:
    """``--tracking-uri`` with ``--no-mlflow`` (``simulate``, ``sweep``): the store it names would be ignored, and a
    user who gave both expects one of them to act; ``BadInput`` names both and what to drop."""
    if args.no_mlflow and args.tracking_uri is not None:
        raise BadInput(f"--tracking-uri {args.tracking_uri} is ignored with --no-mlflow, which logs nothing to MLflow: "
                       "drop --no-mlflow to log there, or drop --tracking-uri")


def path_text(text: str) -> str:
    """An argparse type for a path kept as text: an empty one is refused, as ``Path("")`` is the current folder
    (``--out "$UNSET"`` would write there, ``--config ""`` read whatever config files it holds), and so is one
    whose bytes are not UTF-8."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty: name a file, folder or store (an unset shell variable?)")
    try:  # bytes that are not UTF-8 arrive as surrogates, which SQLite, Arrow and stdout cannot encode
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{text.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8: "
                                         "rename the file or folder") from None
    return text


def path_argument(text: str) -> Path:
    """An argparse type for a path: :func:`path_text` as a ``Path``."""
    return Path(path_text(text))


SYMBOLS_RULE = "space-separated (BTCUSDT ETHUSDT); a comma also separates (BTCUSDT,ETHUSDT), case is ignored"


class SymbolList(argparse.Action):
    """``--symbols`` in every command: the values are space-separated, each may hold comma-separated names.

    ``--symbols BTCUSDT ETHUSDT``, ``--symbols BTCUSDT,ETHUSDT`` and ``--symbols btcusdt, ethusdt`` all give
    ``["BTCUSDT", "ETHUSDT"]``: upper-cased, empty pieces dropped, order and repeats kept (the command judges
    a repeat). With ``nargs="+"`` at least one name must remain.
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[object] | None, option_string: str | None = None) -> None:
        texts = [values] if isinstance(values, str) else [str(v) for v in values or ()]
        names = [piece.strip().upper() for text in texts for piece in text.split(",") if piece.strip()]
        if not names and self.nargs == "+":
            parser.error(f"{option_string}: no symbol name in {' '.join(texts)!r}")
        setattr(namespace, self.dest, names)


def refuse_unknown_symbols(flag: str, symbols: Iterable[str], universe: Collection[str], *,
                           embedded: bool = False) -> None:
    """Symbols named on the command line must be ours: a typo is refused, not looked up and found missing.
    ``embedded``: the universe is the embedded defaults' (no ``--config``), where a symbol added to a config
    directory for a new market is not, so the line says to pass it."""
    unknown = [symbol for symbol in symbols if symbol not in universe]
    if unknown:
        where = (" (the embedded defaults': pass --config DIR if you added it to the universe of yours)"
                 if embedded else "")
        raise BadInput(f"{flag} {' '.join(unknown)}: not in strategy_config.json universe{where}; "
                       f"choose from {' '.join(sorted(universe))}")


def refuse_partial(failed: Mapping[str, str], requested: int) -> None:
    """After the parts that succeeded are printed: any part that failed makes the command fail (exit 2, one line
    naming each failed part), so a script does not read a partial answer as a whole one."""
    if failed:
        raise BadInput(f"{len(failed)} of {requested} symbol(s) not scored: "
                       + "; ".join(f"{part}: {reason}" for part, reason in failed.items())
                       + (" (the others are printed above)" if len(failed) < requested else ""))


def ray_address(text: str) -> str:
    """``--address`` in a form Ray can join: a malformed one is a bad argument, not a cluster failure."""
    from router_tuner.tuner.cluster import check_address_form

    try:
        check_address_form(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def symbol_name(text: str) -> str:
    """``--symbol`` in every command: one name, read like ``--symbols`` (``btcusdt`` is ``BTCUSDT``)."""
    name = text.strip().upper()
    if not name or "," in name or any(c.isspace() for c in name):
        raise argparse.ArgumentTypeError(f"one symbol name, e.g. BTCUSDT, got {text!r}")
    return name


def _sqlite(error: Exception) -> tuple[int, str]:
    text = str(error)
    if "locked" in text or "busy" in text:
        return RUNTIME_FAILURE, f"{text}: another process holds it; retry when that process is done"
    if "disk is full" in text:
        return RUNTIME_FAILURE, f"{text}: the disk is full; free space and rerun"
    if "unable to open" in text or "readonly" in text:
        return BAD_INPUT, f"{text}: check the path and that it can be written"
    if "no such table" in text:
        return BAD_INPUT, f"{text}: not a file router-tuner wrote for this command; point at the right file"
    return BAD_INPUT, (f"{text}: not a readable SQLite database (corrupt, truncated or another kind of file); "
                       "restore it from a copy or point at the right file")


def _os(error: Exception) -> tuple[int, str]:
    assert isinstance(error, OSError)
    where = f": {error.filename}" if error.filename else ""
    text = f"{error.strerror or error}{where}"
    if isinstance(error, (PermissionError, FileExistsError, IsADirectoryError, NotADirectoryError)) \
            or error.errno == errno.EROFS:
        return BAD_INPUT, f"{text}: choose a location that can be written (or read), or fix its permissions"
    if isinstance(error, FileNotFoundError):
        return BAD_INPUT, f"{text}: check the path"
    if error.errno == errno.ENAMETOOLONG:  # a path's fault, not the run's (it was exit 1)
        return BAD_INPUT, f"{text}: a file or folder name is longer than the file system takes; shorten it"
    if error.errno == errno.ENOSPC:
        return RUNTIME_FAILURE, f"{text}: the disk is full; free space and rerun"
    return RUNTIME_FAILURE, text


def _config(error: Exception) -> tuple[int, str]:
    issues = getattr(error, "issues", ())
    first = f", first: {issues[0]}" if issues else ""
    return BAD_INPUT, (f"{len(issues)} configuration problem(s){first}; "
                       "`router-tuner config check DIR` lists them all")


def _hint(code: int, advice: str) -> Callable[[Exception], tuple[int, str]]:
    return lambda error: (code, f"{error}; {advice}" if advice else str(error))


_MLFLOW_ADVICE = "check the MLflow store (--tracking-uri, MLFLOW_TRACKING_URI or tuner.json mlflow)"


_RESPONSE_BODY = re.compile(r"Response body: '(?P<body>.*)'", re.DOTALL)
_BODY_SHOWN = 300
"""The characters of a server's answer an MLflow failure keeps in its line."""


def _mlflow(error: Exception) -> tuple[int, str]:
    """MLflow's client failing: its words, but a server's answer quoted in them cut to what helps: an HTML page (a
    proxy's or another server's error page) is named, not pasted into the one line, and a long body is cut."""
    def shorten(match: re.Match[str]) -> str:
        body = match["body"].strip()
        if body.startswith("<"):
            return "Response body: an HTML page, not MLflow's JSON"
        return f"Response body: '{body[:_BODY_SHOWN]}{'…' if len(body) > _BODY_SHOWN else ''}'"

    return RUNTIME_FAILURE, f"{_RESPONSE_BODY.sub(shorten, str(error))}; {_MLFLOW_ADVICE}"


def _mlflow_database(error: Exception) -> tuple[int, str]:
    """MLflow's SQL store failing (a tracking URI naming a folder or a device): the driver's words, no SQL. A store
    another process holds (SQLite's "database is locked" after MLflow's wait) says so and to retry, as a locked
    journal does: "check the MLflow store" sent the user looking for a fault in a sound store."""
    text = str(getattr(error, "orig", None) or error)
    if "locked" in text or "busy" in text:
        return RUNTIME_FAILURE, (f"MLflow store: {text}: another process is writing it (a simulate or sweep "
                                 "registering, a live tuner publishing); retry when it is done")
    return RUNTIME_FAILURE, f"MLflow store: {text}; {_MLFLOW_ADVICE}"


FAILURES: dict[str, Callable[[Exception], tuple[int, str]]] = {
    "router_tuner.cli.main.BadInput": _hint(BAD_INPUT, ""),
    "router_tuner.cli.main.RunFailure": _hint(RUNTIME_FAILURE, ""),
    "router_tuner.config.loader.ConfigError": _config,
    "router_tuner.executor.intents.IntentFormatError": _hint(
        BAD_INPUT, "fix or remove that line and run again (the intents before it are journaled and will not be "
                   "routed twice)"),
    "router_tuner.simulation.results.NothingFilled": _hint(
        BAD_INPUT, "check that the data trades and router.json static_policy (fallback_mode cancel with a short "
                   "maker_ttl_ms and no taker arm fills nothing)"),
    "router_tuner.simulation.workers.WorkerKilled": _hint(RUNTIME_FAILURE, ""),
    "router_tuner.executor.journal.JournalLocked": _hint(RUNTIME_FAILURE, "stop the process that writes it, or wait"),
    "router_tuner.executor.store.StoreLocked": _hint(RUNTIME_FAILURE, "stop the process that writes it, or wait"),
    "router_tuner.executor.journal.JournalVersionError": _hint(BAD_INPUT, "point at a journal written by router-tuner"),
    "router_tuner.executor.store.NotAStore": _hint(BAD_INPUT, "point --store at the executor store "
                                                              "router-tuner wrote beside this journal"),
    "router_tuner.executor.journal.CorruptRow": _hint(BAD_INPUT, "the journal is damaged; restore it from a copy"),
    "router_tuner.executor.journal.JournalError": _hint(RUNTIME_FAILURE, ""),
    "router_tuner.tuner.ope.partition.layout.DatasetError": _hint(RUNTIME_FAILURE, ""),
    "router_tuner.tuner.registry.NoSuchVersion": _hint(
        BAD_INPUT, "`router-tuner policy list` shows the versions there (the same --prefix or --simulation, "
                   "--tracking-uri)"),
    "router_tuner.tuner.registry.ChampionStays": _hint(
        RUNTIME_FAILURE, "the champion is unchanged (rollback steps back one promotion at a time, never forward); "
                         "`router-tuner policy list` shows each version's aliases"),
    "router_tuner.tuner.registry.RegistryError": _hint(RUNTIME_FAILURE, _MLFLOW_ADVICE),
    "router_tuner.tuner.registry.TrackingUriError": _hint(BAD_INPUT, _MLFLOW_ADVICE),
    "mlflow.tracking.registry.UnsupportedModelRegistryStoreURIException": _hint(BAD_INPUT, _MLFLOW_ADVICE),
    "mlflow.exceptions.MlflowException": _mlflow,
    "sqlalchemy.exc.SQLAlchemyError": _mlflow_database,
    "router_tuner.router.venue.VenueError": _hint(RUNTIME_FAILURE, "the venue refused or did not answer; retry later"),
    "sqlite3.DatabaseError": _sqlite,
    "builtins.OSError": _os,
}
"""Exception class (module.qualname) -> (exit code, message); the first class along the MRO that is listed wins."""


def describe_failure(error: BaseException) -> tuple[int, str]:
    """The exit code and the one line a failure ends in (notes from :func:`reading` name the file first)."""
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED, "interrupted"
    from router_tuner.config.encoding import escape_controls  # here: importing it costs every command's start

    describe = next((FAILURES[name] for cls in type(error).__mro__
                     if (name := f"{cls.__module__}.{cls.__qualname__}") in FAILURES), None)
    if describe is None:
        code, text = RUNTIME_FAILURE, (f"unexpected {type(error).__name__}: {error} "
                                       "(rerun with --debug for the traceback, and report it)")
    else:
        code, text = describe(error)
    notes = getattr(error, "__notes__", [])
    line = ": ".join([*notes, text])
    return code, escape_controls(" ".join(line.split()))  # one line, and no escape sequence reaches the terminal


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block), exit 2 like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(BAD_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser(selected: str | None) -> argparse.ArgumentParser:
    """The parser, with the arguments of the ``selected`` command only (``None``: the overview)."""
    parser = _Parser(prog="router-tuner", description="Adaptive maker/taker order router with an online tuner.",
                     epilog="Exit codes: 0 done, 1 runtime failure, 2 bad input, 130 interrupted, 141 stdout's "
                            "reader gone (| head). A failure is one line on stderr, also under a command's --json "
                            "(stdout then carries only results); "
                            "--debug shows the traceback instead. --symbols lists are " + SYMBOLS_RULE + ".")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure instead of one line")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            module = importlib.import_module(f"router_tuner.{module_name}")
            module.add_arguments(sub)
            sub.set_defaults(run=module.run)
    return parser


def _stdout_reader_gone(error: BaseException) -> bool:
    """Whether ``error`` (or what it wraps) is our stdout's reader gone: quiet, as for any shell command, where it
    was reported as the command's failure ("journal F: Broken pipe"). Stdout is then pointed at /dev/null so that
    the interpreter's own last flush does not report it again; a socket's broken pipe (a webhook, an MLflow
    server) leaves stdout's pipe whole and stays a failure."""
    chain: BaseException | None = error
    while chain is not None and not isinstance(chain, BrokenPipeError):
        chain = chain.__cause__ or chain.__context__
    if chain is None or not _stdout_pipe_broken():
        return False
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return True


def _stdout_pipe_broken() -> bool:
    """A pipe whose reader has closed polls as an error for its writer (what the failed write met)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll(), or a stdout without a descriptor (a test's capture)
        return False


def _sigterm_as_ctrl_c(_signum: int, _frame: object) -> None:
    """``live``'s SIGTERM until its executor runs: the start-up stops as on Ctrl-C (``interrupted``, exit 130)."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code.

    For ``live``, SIGTERM is taken as Ctrl-C from here, before its modules load, until the executor installs its
    graceful stop (``cli.live``): it killed the process during start-up without a word (exit 143), where ``live``
    documents SIGTERM as a stop like Ctrl-C. The handler in place before is restored on return."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in arguments if not a.startswith("-")), None)
    if selected != "live" or threading.current_thread() is not threading.main_thread():
        return _main(arguments, selected)
    previous = signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)
    try:
        return _main(arguments, selected)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(arguments: list[str], selected: str | None) -> int:
    try:  # the command's module is imported here (seconds for MLflow or Ray): Ctrl-C may land in it
        args = build_parser(selected if selected in COMMANDS else None).parse_args(arguments)
    except KeyboardInterrupt:
        if "--debug" in arguments:
            raise
        print(" ".join(["router-tuner", *([selected] if selected in COMMANDS else [])]) + ": interrupted",
              file=sys.stderr)
        return INTERRUPTED
    if sys.stdout is None and args.command in RESULT_COMMANDS:  # started with `>&-`: print() dropped every result
        print(f"router-tuner {args.command}: standard output is closed (started with >&-), so no result could be "
              "shown; give it somewhere to write (> /dev/null to discard it)", file=sys.stderr)
        return BAD_INPUT
    try:
        return int(args.run(args))
    except (Exception, KeyboardInterrupt) as error:
        if args.debug:
            raise
        if _stdout_reader_gone(error):
            return READER_GONE
        code, line = describe_failure(error)
        print(f"router-tuner {args.command}: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":
    raise SystemExit(main())

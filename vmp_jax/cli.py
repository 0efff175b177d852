"""What the command-line tools share: absl flag parsing, user-facing messages and the error path.

Every `python -m vmp_jax.<tool>` (and train.py) is an absl program: the tool defines its flags in a function
`define_flags(flag_values, argv)`, called only when the module runs as a program (`run`) or on a fresh
`FlagValues` for one in-process call (`call`, what tests use), so that all the tools import into one process.

Messages: `say` prints progress and results to stdout (flushed; in multi-process runs only on process 0);
errors go to stderr as one line `error: ...`. A mistake in the input -- a flag, a config value, a path -- is
reported that way with exit status 2 and no traceback: `UsageError` (and `ConfigError`, which the
config's validators raise), an `OSError` about a path (file not found, a file where a directory should be, ...), and a
`ValueError` raised by this project's own code (its messages name the offending value and what was expected).
A run that stops itself for a reason it states (`RunStopped`, e.g. a non-finite loss) prints that one line and exits
with status 1. Anything else is a bug, and keeps its traceback.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from absl import flags, logging

# Exit status of a run stopped by a user error (the usual status of a command-line misuse).
USAGE_STATUS = 2
STOPPED_STATUS = 1  # a run that stopped itself, for the reason it printed
PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)
_PROJECT = (
    os.path.dirname(os.path.abspath(__file__)),
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs"),
)

Command = Callable[[list[str], flags.FlagValues], "int | None"]
DefineFlags = Callable[[flags.FlagValues, "Sequence[str] | None"], None]


class UsageError(ValueError):
    """Bad input from the user (a flag, a config value, a path): one line on stderr, exit status 2."""


class ConfigError(UsageError):
    """An invalid config value; its message names the key, the value and what was expected."""


def config_error(key: str, value, expected: str) -> ConfigError:
    """`config.KEY=VALUE: expected EXPECTED`, the one form every config validator raises."""
    return ConfigError(f"config.{key}={value!r}: expected {expected}")


class RunStopped(Exception):
    """A run that stopped for a reason its message explains (e.g. a non-finite loss): one line on stderr, exit
    status 1, no traceback."""


def say(message: str) -> None:
    """A user-facing line on stdout, flushed; in a multi-process run only process 0 prints (single-process tools
    do not start a JAX backend for it)."""
    if "jax" in sys.modules:
        import jax  # pylint: disable=import-outside-toplevel

        if jax.distributed.is_initialized() and jax.process_index() != 0:
            return
    print(message, flush=True)


def error(message: str) -> None:
    """`error: message` on stderr, one line (on every process: each one that fails says why)."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def is_user_error(e: BaseException) -> bool:
    """A mistake in the input rather than a bug (module docstring)."""
    if isinstance(e, (UsageError, *PATH_ERRORS)):
        return True
    if not isinstance(e, ValueError):
        return False
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = os.path.abspath(tb.tb_frame.f_code.co_filename) if tb is not None else ""
    return where.startswith(_PROJECT) or where == os.path.abspath(sys.argv[0])


def output_dir(path: str, flag: str) -> str:
    """`path` if it is a directory or can be made one; a UsageError naming `flag` when it is a file or a URL."""
    if "://" in path:
        raise UsageError(
            f"--{flag} {path}: object-store URLs (gs://, s3://) are not supported: the metrics, config "
            "and checkpoint files are written with local file operations. Use a filesystem every host "
            "sees (NFS, Lustre, or the bucket mounted with gcsfuse: --{0} /mnt/bucket/run)".format(flag)
        )
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--{flag} {path}: is a file; expected a directory (made if missing)")
    return path


# ----------------------------------------------------------------------------------------------- flags


def _flag_error_text(e: Exception) -> str:
    """absl's message, with the traceback ml_collections puts in it for a config file that raised, cut to its
    last line: 'flag --config=X:ARG: Error whilst parsing config file: ...ValueError: msg' -> '--config=X:ARG: msg'."""
    text = str(e)
    if "Traceback (most recent call last)" in text:
        head = text.split(": Error whilst parsing config file", 1)[0]
        last = [line.strip() for line in text.splitlines() if line.strip()][-1]
        text = f"{head}: {last.split(': ', 1)[-1]}"
    text = text[len("flag ") :] if text.startswith("flag --") else text
    required = r"(?:flag )?--(\w+)=None: Flag --\1 must have a value other than None\.\s*"
    missing = re.findall(required, text)
    if missing and not re.sub(required, "", text):  # absl: one such sentence per missing required flag
        return f"{' and '.join(f'--{name}' for name in missing)} {'is' if len(missing) == 1 else 'are'} required"
    return text


def _unknown_key_text(e: Exception, argv: Sequence[str]) -> str:
    """ml_collections' error for `--config.some.key=...` naming no key of the config, as one sentence."""
    inner: BaseException = e
    while inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    key, _, hint = str(inner.args[0] if inner.args else inner).partition("\n")
    key = key.strip("'\"")
    given = [a.split("=")[0] for a in argv if a.startswith("--") and key in a.split("=")[0].split(".")[1:]]
    hint = f"; {hint.strip()[0].lower()}{hint.strip()[1:]}" if hint.strip() else ""
    return f"{given[0] if given else key}: the config has no key {key!r}{hint}"


def parse(flag_values: flags.FlagValues, argv: Sequence[str], define_flags: DefineFlags | None = None) -> list[str]:
    """Defines (with `define_flags`, if given) and parses the flags of argv (argv[0]: the program) into
    flag_values; returns the positional arguments, argv[0] first.

    Raises UsageError with one line for an unknown or malformed flag, a config file that fails to load or rejects
    its argument, and a `--config.key` override of a key the config lacks (ml_collections parses a flag's
    default config, and the overrides, when the flag is defined).
    """
    argv = list(argv)
    try:
        if define_flags is not None:
            define_flags(flag_values, argv)
        positional = flag_values(argv)
    except flags.Error as e:
        raise UsageError(_flag_error_text(e)) from None
    except (AttributeError, KeyError) as e:  # ml_collections: an override of a key the config does not have
        if not any(a.startswith("--") and "." in a.split("=")[0] for a in argv[1:]):
            raise
        raise UsageError(_unknown_key_text(e, argv)) from None
    for name in list(flag_values):
        flag = flag_values[name]
        if hasattr(flag, "config_filename") and flag.value is not None:  # an ml_collections config flag
            try:  # a file that could not be read is only reported when the config is first used
                _ = flag.value.keys
            except OSError as e:
                cause = [line.strip() for line in str(e.__cause__ or e).splitlines() if line.strip()][-1]
                raise UsageError(f"--{name}={flag.config_filename}: {cause}") from None
    return positional


def _report(command: Command, argv: list[str], flag_values: flags.FlagValues) -> int:
    try:
        return command(argv, flag_values) or 0
    except RunStopped as e:
        error(e)
        return STOPPED_STATUS
    except Exception as e:  # pylint: disable=broad-except
        if not is_user_error(e):
            raise
        error(e)
        return USAGE_STATUS


def call(command: Command, define_flags: DefineFlags, args: Sequence[str], prog: str = "vmp_jax") -> int:
    """Runs the command line `prog ARGS...` in this process on fresh flags; returns its exit status.

    A user error prints its one line and returns USAGE_STATUS, as `run` exits with it.
    """
    flag_values = flags.FlagValues()
    try:
        positional = parse(flag_values, [prog, *args], define_flags)
    except UsageError as e:
        error(e)
        return USAGE_STATUS
    return _report(command, positional, flag_values)


def run(command: Command, define_flags: DefineFlags | None = None) -> NoReturn:
    """The program: defines the flags on absl's global FLAGS (unless the caller did), then `absl.app.run`s
    `command(argv, FLAGS)` with the error path of the module docstring. `--help` shows the main module's docstring
    and flags."""
    from absl import app  # pylint: disable=import-outside-toplevel

    def parse_or_exit(argv: list[str]) -> list[str]:
        try:
            positional = parse(flags.FLAGS, argv, define_flags)
        except UsageError as e:
            error(f"{e} (see --help)")
            sys.exit(USAGE_STATUS)
        if "verbosity" in flags.FLAGS and not flags.FLAGS["verbosity"].present:
            # JAX, orbax and grain log at INFO (backends probed, every file written); --verbosity=0 shows it.
            logging.set_verbosity(logging.WARNING)
        return positional

    skip_absent_tpu()
    app.run(lambda argv: _report(command, argv, flags.FLAGS), flags_parser=parse_or_exit)
    raise AssertionError("absl.app.run returned")  # it always exits


_GOOGLE_PCI_VENDOR = "0x1ae0"  # TPU chips on the PCI bus (the test JAX's own Cloud TPU detection makes)


def skip_absent_tpu() -> bool:
    """With libtpu installed (requirements-tpu.txt, for `python -m vmp_jax.aot`) on a machine without TPU chips,
    JAX would start the TPU runtime first and print its failure to stderr before falling back to the CPU: limit
    JAX to the CPU there, unless JAX_PLATFORMS says otherwise or a GPU plugin is installed. True if it did."""
    import glob  # pylint: disable=import-outside-toplevel
    import importlib.util  # pylint: disable=import-outside-toplevel

    if os.environ.get("JAX_PLATFORMS") or importlib.util.find_spec("libtpu") is None:
        return False
    for vendor in glob.glob("/sys/bus/pci/devices/*/vendor"):
        with open(vendor, encoding="ascii") as f:
            if f.read().strip() == _GOOGLE_PCI_VENDOR:
                return False
    if any(importlib.util.find_spec(name) for name in ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin")):
        return False
    if "jax" in sys.modules:
        sys.modules["jax"].config.update("jax_platforms", "cpu")
    os.environ["JAX_PLATFORMS"] = "cpu"
    return True

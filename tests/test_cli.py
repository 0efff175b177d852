"""vmp_jax.cli: user errors are one line `error: ...` with exit status 2, bugs keep their traceback; every tool's
--help shows its usage."""

import os
import re
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from vmp_jax import cli
from vmp_jax.training import validation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = [
    "vmp_jax.ablate",
    "vmp_jax.export",
    "vmp_jax.predict",
    "vmp_jax.visualize",
    "vmp_jax.explore",
    "vmp_jax.data.prepare",
    "vmp_jax.data.splits",
    "vmp_jax.data.check_videos",
    "vmp_jax.convert",
]


def define_flags(flag_values, argv):
    config_flags.DEFINE_config_file(
        "config",
        os.path.join(ROOT, "configs", "default.py"),
        "a training config",
        flag_values=flag_values,
        sys_argv=argv,
    )
    flags.DEFINE_string("workdir", None, "a directory", flag_values=flag_values)


def command(argv, flag_values):
    validation.validate(flag_values.config, num_devices=1)
    cli.output_dir(flag_values.workdir, "workdir")
    cli.say(f"{flag_values.config.num_frames} {argv[1:]}")


def run(capsys, *args):
    status = cli.call(command, define_flags, ["--workdir", ROOT, *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_good_command_line_runs_and_passes_positional_arguments(capsys):
    assert run(capsys, "--config.num_frames=4", "a", "b") == (0, "4 ['a', 'b']\n", "")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.num_frames=1"], "error: config.num_frames=1: expected T >= 2"),
        (
            ["--config.vmp_lamda=0.5"],
            "error: --config.vmp_lamda: the config has no key 'vmp_lamda'; did you mean \"vmp_lambda\"",
        ),
        (["--config.model.nope=1"], "error: --config.model.nope: the config has no key 'nope'"),
        (["--config.num_frames=abc"], "error: --config.num_frames=abc: invalid literal for int()"),
        (
            [f"--config={ROOT}/configs/x3d_finegym.py:xl,gym99"],
            r"error: --config=\S+x3d_finegym.py:xl,gym99: config "
            "argument 'xl,gym99': VARIANT 'xl' is not one of",
        ),
        ([f"--config={ROOT}/nowhere.py"], r"error: --config=\S+nowhere.py: \[Errno 2\] No such file or directory"),
        (["--nope=1"], "error: Unknown command line flag 'nope'"),
        (["--workdir", __file__], f"error: --workdir {__file__}: is a file; expected a directory"),
    ],
)
def test_user_errors_are_one_line_and_status_2(capsys, args, message):
    status, out, err = run(capsys, *args)
    assert status == cli.USAGE_STATUS and out == ""
    assert len(err.splitlines()) == 1 and re.match(message, err), err


def test_missing_required_flags_are_named_together(capsys):
    def two_required(flag_values, argv):
        flags.DEFINE_string("out", None, "", required=True, flag_values=flag_values)
        flags.DEFINE_string("workdir", None, "", required=True, flag_values=flag_values)

    assert cli.call(command, two_required, []) == cli.USAGE_STATUS
    assert capsys.readouterr().err == "error: --out and --workdir are required\n"
    assert cli.call(command, two_required, ["--out=x"]) == cli.USAGE_STATUS
    assert capsys.readouterr().err == "error: --workdir is required\n"


def test_config_errors_are_value_errors_and_usage_errors():
    error = cli.config_error("num_frames", 1, "T >= 2")
    assert isinstance(error, ValueError) and str(error) == "config.num_frames=1: expected T >= 2"
    assert issubclass(cli.ConfigError, cli.UsageError)


def test_bugs_keep_their_traceback():
    def value_error_from_a_library(argv, flag_values):
        import numpy as np

        np.zeros(3).reshape(2)  # a ValueError raised by numpy, not by a check of this project

    with pytest.raises(ValueError, match="cannot reshape"):
        cli.call(value_error_from_a_library, define_flags, [])
    with pytest.raises(ZeroDivisionError):
        cli.call(lambda argv, flag_values: 1 / 0, define_flags, [])


def test_user_error_classification():
    assert cli.is_user_error(FileNotFoundError("x")) and cli.is_user_error(cli.UsageError("x"))
    assert not cli.is_user_error(TypeError("x")) and not cli.is_user_error(KeyError("x"))
    with pytest.raises(ValueError) as raised:  # raised by this project's own check
        cli.output_dir(__file__, "out")
    assert cli.is_user_error(raised.value)


def test_train_py_config_error_is_one_line_with_status_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "train.py", "--workdir", str(tmp_path), "--config.num_frames=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: config.num_frames=1: expected T >= 2 prompts per clip (the loader adds the VMP frame)"
    ]


def test_train_py_workdir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("")
    proc = subprocess.run(
        [sys.executable, "train.py", "--workdir", str(tmp_path / "file")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: --workdir {tmp_path / 'file'}: is a file; expected a directory (made if missing)"
    ]


@pytest.mark.parametrize("tool", TOOLS)
def test_help_shows_the_usage_line_and_the_tools_flags(tool):
    proc = subprocess.run([sys.executable, "-m", tool, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert f"python -m {tool}" in proc.stdout.split("\n\n")[1], proc.stdout[:500]
    path = tool.replace(".", "/")
    assert any(f"{name}:\n" in proc.stdout for name in (f"\n{tool}", f"{path}.py", f"{path}/__main__.py")), proc.stdout
    assert "Traceback" not in proc.stderr


def test_train_py_non_finite_loss_is_one_line_with_status_1(tmp_path):
    tiny = [
        "--config.model.backbone=tiny",
        "--config.num_frames=3",
        "--config.batch_size=8",
        "--config.eval_batch_size=8",
        "--config.num_train_steps=4",
        "--config.progress_bar=False",
        "--config.data.procedural.height=32",
        "--config.data.procedural.width=32",
        "--config.data.procedural.num_train=32",
        "--config.data.procedural.num_eval=8",
        "--config.schedule.name=constant",
        "--config.schedule.base_lr=1e30",
        "--cpu_devices=1",
    ]
    proc = subprocess.run(
        [sys.executable, "train.py", "--workdir", str(tmp_path), *tiny],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and re.match(
        r"error: non-finite (loss|parameters) .* at step \d; training stopped and no "
        r"checkpoint was saved before it\. Rerunning",
        lines[0],
    ), proc.stderr


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores to leave one unused")
def test_train_py_says_when_the_batch_size_leaves_cores_unused(tmp_path):
    args = [
        "--config.model.backbone=tiny",
        "--config.num_frames=3",
        "--config.batch_size=15",
        "--config.eval_batch_size=15",
        "--config.num_train_steps=1",
        "--config.progress_bar=False",
        "--config.data.procedural.height=32",
        "--config.data.procedural.width=32",
        "--config.data.procedural.num_train=30",
        "--config.data.procedural.num_eval=15",
    ]
    env = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
    proc = subprocess.run(
        [sys.executable, "train.py", "--workdir", str(tmp_path), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        f"Using 1 of {os.cpu_count()} CPU cores as devices: the batch sizes (15, 15) are not all multiples of a "
        "larger device count" in proc.stdout
    )
    # A finished run ends with what to do next: the tools' command lines.
    assert f"python -m vmp_jax.export --workdir {tmp_path} --out {tmp_path}_export" in proc.stdout

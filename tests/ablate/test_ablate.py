"""Ablation sweeps: overrides, aggregation against NumPy, and a tiny sweep that is stopped and resumed."""

import csv
import json
import os

import ml_collections
import numpy as np
import pytest
from processes import ROOT
from tiny_run import tiny_config

from vmp_jax.ablate import settings as ablate_settings
from vmp_jax.ablate import summary, sweep
from vmp_jax.ablate.__main__ import main
from vmp_jax.training import loop, run_dir
from vmp_jax.training.run import train_and_evaluate


def sweep_config(settings, seeds=(0, 1)):
    config = ml_collections.ConfigDict()
    config.base = tiny_config(num_train_steps=4, checkpoint_every_steps=2, keep_best=0)
    config.settings = settings
    config.seeds = seeds
    return config


def test_overrides_apply_and_bad_ones_name_the_setting_and_key():
    base = tiny_config()
    setting = ablate_settings.Setting("pn", {"model.vmp.pn": "sigme", "vmp_lambda": 3.0})
    config = ablate_settings.run_config(base, setting, seed=7)
    assert (config.model.vmp.pn, config.vmp_lambda, config.seed) == ("sigme", 3.0, 7)
    assert base.model.vmp.pn == "sigmoid" and base.seed == 0  # the base is not modified
    with pytest.raises(ValueError, match=r"setting 'typo': override 'model.vmp.lamda' is not a training-config key"):
        ablate_settings.run_config(base, ablate_settings.Setting("typo", {"model.vmp.lamda": 1.0}), 0)
    with pytest.raises(ValueError, match=r"setting 'deep': override 'modle.vmp.pn' names no config section 'modle'"):
        ablate_settings.run_config(base, ablate_settings.Setting("deep", {"modle.vmp.pn": "gamma"}), 0)


@pytest.mark.parametrize(
    "settings, seeds, message",
    [
        ([{"name": "a", "overrides": {}}, {"name": "a", "overrides": {}}], (0,), r"unique, repeated: \['a'\]"),
        ([{"name": "x/y", "overrides": {}}], (0,), r"settings\[0\].name='x/y': expected a plain directory name"),
        ([{"name": "a"}], (0,), r"settings\[0\] must have exactly the keys"),
        ([{"name": "a", "overrides": {}}], (), r"config.seeds is empty"),
    ],
)
def test_bad_sweep_definitions(settings, seeds, message):
    with pytest.raises(ValueError, match=message):
        ablate_settings.settings_from_config(sweep_config(settings, seeds))


def fake_result(setting, seed, top1, mca, a=None, b=None, eta=None):
    coefficients = {k: v for k, v in (("slope_a", a), ("shift_b", b), ("eta", eta)) if v is not None}
    return {
        "setting": setting,
        "seed": seed,
        "overrides": {},
        "step": 10,
        "top1": top1,
        "mean_class_accuracy": mca,
        "coefficients": coefficients,
    }


def test_summary_is_mean_and_sample_std_over_seeds(tmp_path):
    settings = [
        ablate_settings.Setting("s1", {"vmp_lambda": 0.0}),
        ablate_settings.Setting("s2", {"model.vmp.pn": "maxexp"}),
        ablate_settings.Setting("s3", {}),
    ]
    results = [
        fake_result("s1", 0, 0.5, 0.4, a=10.0, b=0.1),
        fake_result("s1", 1, 0.7, 0.6, a=14.0, b=0.3),
        fake_result("s1", 2, 0.9, 0.5, a=12.0, b=0.2),
        fake_result("s2", 0, 0.25, 0.25, eta=20.0),
    ]
    rows = summary.summarise(results, settings)
    assert [r["setting"] for r in rows] == ["s1", "s2"]  # s3 has no finished run yet
    s1 = rows[0]
    assert s1["seeds"] == [0, 1, 2]
    assert s1["top1"] == pytest.approx((0.7, np.std([0.5, 0.7, 0.9], ddof=1)))
    assert s1["slope_a"] == pytest.approx((12.0, 2.0)) and "eta" not in s1
    assert rows[1]["eta"] == (20.0, 0.0) and "slope_a" not in rows[1]
    table = summary.markdown_table(rows)
    assert "| s1 | `vmp_lambda=0.0` | 3 | 70.0 ± 20.0 | 50.0 ± 10.0 | a = 12.0 ± 2.0, b = 0.200 ± 0.100 |" in table
    assert "| s2 | `model.vmp.pn=maxexp` | 1 | 25.0 ± 0.0 | 25.0 ± 0.0 | η = 20.0 ± 0.0 |" in table
    summary.write_csv(rows, str(tmp_path / "r.csv"))
    with open(tmp_path / "r.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert float(csv_rows[0]["mean_class_accuracy_std"]) == pytest.approx(0.1)
    assert csv_rows[1]["slope_a_mean"] == "" and float(csv_rows[1]["eta_mean"]) == 20.0


def test_tiny_sweep_stopped_halfway_resumes_and_summarises(tmp_path, monkeypatch):
    workdir = str(tmp_path / "sweep")
    config = sweep_config(
        [{"name": "sigmoid", "overrides": {}}, {"name": "asinhe", "overrides": {"model.vmp.pn": "asinhe"}}], seeds=(0,)
    )
    settings = ablate_settings.settings_from_config(config)
    calls = []
    real_train = train_and_evaluate

    def stop_in_second_run(run_config, directory):
        calls.append(directory)
        if len(calls) == 2:  # as if SIGTERM arrived during the first step of the second run
            monkeypatch.setattr(loop, "_should_stop", lambda *args: True)
        try:
            return real_train(run_config, directory)
        finally:
            monkeypatch.undo()

    assert not sweep.run_sweep(
        config.base, settings, config.seeds, workdir, train_fn=stop_in_second_run, log=lambda msg: None
    )
    stopped = ablate_settings.run_directory(workdir, settings[1], 0)
    assert calls[1] == stopped and not os.path.exists(os.path.join(stopped, run_dir.RESULT))
    assert [r["seeds"] for r in summary.summarise(summary.collect(workdir, settings, [0]), settings)] == [[0]]

    calls.clear()
    logs = []
    assert sweep.run_sweep(
        config.base,
        settings,
        config.seeds,
        workdir,
        train_fn=lambda c, d: calls.append(d) or real_train(c, d),
        log=logs.append,
    )
    assert calls == [stopped]  # the finished run is skipped
    assert sum("skipped" in line for line in logs) == 1
    with open(os.path.join(stopped, "metrics.jsonl")) as f:
        train_steps = [json.loads(line)["step"] for line in f if '"train"' in line]
    assert train_steps == [2, 4]  # the stopped run resumed from its checkpoint at step 1, not from scratch

    results = summary.collect(workdir, settings, [0])
    assert len(results) == 2 and all(r["step"] == 4 for r in results)
    assert set(results[1]["coefficients"]) == {"gamma"} and set(results[0]["coefficients"]) == {"slope_a", "shift_b"}
    rows = summary.write_summary(workdir, settings, [0])
    assert rows[1]["top1"] == (results[1]["top1"], 0.0)
    with open(os.path.join(stopped, "metrics.jsonl")) as f:
        final_train = [json.loads(line) for line in f if '"train"' in line][-1]
    assert results[1]["coefficients"]["gamma"] == final_train["vmp_gamma"]
    with open(os.path.join(workdir, "results.md")) as f:
        assert "2 of 2 runs finished" in f.read()
    for name in ("results.csv", "accuracy.png", "coefficients.png"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0

    # Changing what a setting means, without renaming it, is refused instead of mixing runs.
    changed = [ablate_settings.Setting("sigmoid", {"vmp_lambda": 5.0}), settings[1]]
    with pytest.raises(ValueError, match=r"sigmoid/seed_0 holds a run with another config \(vmp_lambda: saved 1.0"):
        sweep.run_sweep(config.base, changed, config.seeds, workdir)


def test_command_line_summarises_finished_runs_and_reports_mistakes_in_one_line(tmp_path, capsys):
    workdir = tmp_path / "sweep"
    for setting, top1 in (("default", 0.5), ("lambda0", 0.75)):
        run = workdir / setting / "seed_0"
        run.mkdir(parents=True)
        (run / run_dir.RESULT).write_text(json.dumps(fake_result(setting, 0, top1, top1, a=10.0, b=0.1)))
        (run / "metrics.jsonl").write_text(
            json.dumps({"step": 10, "split": "train", "vmp_slope_a": 10.0, "vmp_shift_b": 0.1}) + "\n"
        )
    config = os.path.join(ROOT, "configs", "ablation_init.py")
    # --cpu_devices=0: keep the devices of this process's JAX, which is already running.
    args = ["--config", config, "--workdir", str(workdir), "--summarise_only", "--config.seeds=0,", "--cpu_devices=0"]
    assert main(args) == 0
    assert capsys.readouterr().out == f"2 finished runs summarised in {workdir}\n"
    table = (workdir / "results.md").read_text()
    assert "| default | `(base)` | 1 | 50.0 ± 0.0 | 50.0 ± 0.0 | a = 10.0 ± 0.0, b = 0.100 ± 0.000 |" in table
    assert "| lambda0 | `vmp_lambda=0.0` | 1 | 75.0 ± 0.0 |" in table
    assert os.path.exists(workdir / "accuracy.png") and os.path.exists(workdir / "coefficients.png")
    for bad, message in (
        (["--config.base.vmp_lamda=1"], "error: --config.base.vmp_lamda: the config has no key"),
        (["--workdir", str(workdir / "results.md")], f"error: --workdir {workdir / 'results.md'}: is a file"),
    ):
        assert main(args + bad) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith(message) and len(captured.err.splitlines()) == 1 and not captured.out

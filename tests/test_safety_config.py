"""The config stage never reports a user's mistake as an internal error.

Interpolations that do not resolve, seeds outside what NumPy and Optuna take, Hydra's flags
with ``-m``, and a sweeper's search space that names a key the chosen model lacks: each is one
line naming the key or flag, exit code 2, and nothing written. ``${hydra:runtime.cwd}``
resolves as in any Hydra application.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import TINY

from imgcls import cli


def refused(tmp_path: Path, monkeypatch, capsys, args: list[str], message: str) -> str:
    """Run ``imgcls train`` in an empty folder: exit 2, one line matching ``message``, and
    nothing created (``output_root`` is inside the folder)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMGCLS_DEBUG", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    code = cli.main(["train", "output_root=out", *args])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("imgcls: error: "), err
    assert "internal error" not in err and "Traceback" not in captured.err + captured.out
    assert re.search(message, err), err
    assert list(tmp_path.iterdir()) == []
    return err


INTERPOLATIONS = [
    (
        ["seed=${oc.env:IMGCLS_TEST_UNSET}"],
        r"seed=\$\{oc.env:IMGCLS_TEST_UNSET\}: the environment variable IMGCLS_TEST_UNSET is "
        r"not set; .*\$\{oc.env:IMGCLS_TEST_UNSET,<default>\}$",
    ),
    (["seed=${seed}"], r"seed=\$\{seed\} refers back to itself \(an interpolation cycle\)"),
    (["+a=${b}", "+b=${a}"], r"^imgcls: error: [ab]=\$\{[ab]\} refers back to itself"),
    (
        ["optimizer.lr=${optimizer.lrr}"],
        r"optimizer.lr=\$\{optimizer.lrr\} refers to 'optimizer.lrr', which is not a config key"
        r" — did you mean 'optimizer.lr'\?",
    ),
    (
        ["trainer.epochs=${nosuch:3}"],
        r"trainer.epochs=\$\{nosuch:3\} uses the unknown resolver 'nosuch'; available: .*oc.env",
    ),
    (
        ["trainer.epochs=${oc.env:HOME}"],
        r"trainer.epochs=\$\{oc.env:HOME\} has the wrong type",
    ),
    (["seed=???"], r"seed=\?\?\? has no value"),
]


@pytest.mark.parametrize(
    ("overrides", "message"), INTERPOLATIONS, ids=[" ".join(c[0]) for c in INTERPOLATIONS]
)
def test_an_interpolation_that_does_not_resolve_names_its_key(
    tmp_path, monkeypatch, capsys, overrides, message
):
    monkeypatch.delenv("IMGCLS_TEST_UNSET", raising=False)
    refused(tmp_path, monkeypatch, capsys, [*TINY, *overrides], message)


def test_an_environment_variable_that_is_set_resolves(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMGCLS_TEST_EPOCHS", "7")
    args = ["train", "--cfg", "job", "--resolve", "trainer.epochs=${oc.env:IMGCLS_TEST_EPOCHS}"]
    assert cli.main(args) == 0
    assert "epochs: 7" in capsys.readouterr().out


def test_hydra_runtime_cwd_resolves_while_checking_and_in_the_run(tmp_path, monkeypatch, capsys):
    """``${hydra:runtime.cwd}`` is the folder imgcls was started in, as in any Hydra app."""
    monkeypatch.chdir(tmp_path)
    shown = ["train", "--cfg", "job", "--resolve", "dataset=folder"]
    assert cli.main([*shown, "dataset.root=${hydra:runtime.cwd}/images"]) == 0
    assert f"root: {tmp_path}/images" in capsys.readouterr().out

    args = [*TINY, "trainer.epochs=1", "report.html=false", "output_root=${hydra:runtime.cwd}/runs"]
    assert cli.main(["train", *args]) == 0
    (summary,) = (tmp_path / "runs").glob("*/*/summary.json")
    assert json.loads(summary.read_text())["status"] == "completed"

    # Hydra saves the config unresolved: resume resolves it with the run's own settings
    record = json.loads(summary.read_text())
    summary.write_text(json.dumps({**record, "status": "interrupted", "pid": None}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli.main(["train", f"resume={summary.parent}"]) == 0, capsys.readouterr().err
    assert json.loads(summary.read_text())["status"] == "completed"
    assert list(elsewhere.iterdir()) == []


SEEDS = [
    (["seed=99999999999999999999"], r"seed=99999999999999999999 is invalid: .*\[0, 4294967295\]"),
    (["seed=-1"], r"seed=-1 is invalid: a seed is an integer in \[0, 4294967295\]"),
    (["seed=4294967296"], r"seed=4294967296 is invalid"),
    (["dataset.split_seed=-5"], r"dataset.split_seed=-5 is invalid: .*\[0, 4294967295\]"),
    (["dataset.seed=99999999999999999999"], r"dataset.seed=99999999999999999999 is too large"),
    (["trainer.epochs=100000000000000000000"], r"trainer.epochs=100000000000000000000 is too"),
]


@pytest.mark.parametrize(("overrides", "message"), SEEDS, ids=[" ".join(c[0]) for c in SEEDS])
def test_a_seed_outside_its_range_names_the_key_and_the_range(
    tmp_path, monkeypatch, capsys, overrides, message
):
    refused(tmp_path, monkeypatch, capsys, [*TINY, *overrides], message)


def test_preview_refuses_a_seed_outside_its_range(tmp_path, monkeypatch, capsys):
    """``imgcls preview`` checks its seed as ``imgcls train`` does (NumPy would raise)."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["preview", "seed=-1", "output_root=out"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "imgcls: error: seed=-1 is invalid: a seed is an integer in [0, 4294967295]"
    assert list(tmp_path.iterdir()) == []


FLAGS = [
    (["-m", "--cfg", "job"], r"-m \(--multirun\) and --cfg cannot be combined.*drop -m"),
    (["-m", "--cfg", "hydra"], r"cannot be combined"),
    (["-m", "--cfg", "all", "--resolve"], r"cannot be combined"),
    (["-m", "-c", "job"], r"cannot be combined"),
    (["-m", "--info"], r"-m \(--multirun\) and --info cannot be combined"),
    (["-m", "--info", "defaults"], r"cannot be combined"),
    (["--info", "model=nope"], r"unknown model 'nope'"),
    (["-m", "-sc"], r"--shell-completion cannot be combined"),
    (["-m", "--run"], r"--run and -m \(--multirun\) cannot be combined"),
    (["-m", "--resolve"], r"--resolve only works with --cfg"),
    (["--resolve"], r"--resolve only works with --cfg"),
    (["-m", "--config-name", "other"], r"--config-name and --config-path are not supported"),
    (["-m", "--config-path", "elsewhere"], r"--config-name and --config-path are not supported"),
    (["-m", "--config-dir", "no_such_dir"], r"--config-dir no_such_dir: no such folder"),
    (["-m", "--experimental-rerun", "x.pickle"], r"--experimental-rerun is not supported"),
    (["-m", "--no-such-flag"], r"unrecognized arguments: --no-such-flag"),
    (["-m", "--cfg", "jobs"], r"argument --cfg/-c: invalid choice: 'jobs'"),
    (["--cfg", "job", "model=nope"], r"unknown model 'nope'"),
    (["--help", "model=nope"], r"unknown model 'nope'"),
    (["--cfg", "job", "--resolve", "seed=${oc.env:IMGCLS_TEST_UNSET}"], r"not set"),
    (["--info", "defaults", "optimizer.lrr=1"], r"unknown config key 'optimizer.lrr'"),
]


@pytest.mark.parametrize(("args", "message"), FLAGS, ids=[" ".join(c[0]) for c in FLAGS])
def test_hydra_flags_with_multirun_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.delenv("IMGCLS_TEST_UNSET", raising=False)
    refused(tmp_path, monkeypatch, capsys, [*TINY, *args], message)


@pytest.mark.parametrize("flag", ["--help", "--hydra-help"])
def test_help_with_multirun_prints_hydras_help(tmp_path, monkeypatch, capsys, flag):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "-m", flag, "model=simplecnn"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert ("hydra/launcher" if flag == "--hydra-help" else "name: simplecnn") in out
    assert list(tmp_path.iterdir()) == []


def test_an_override_after_a_flag_is_read_as_hydra_reads_it(tmp_path, monkeypatch, capsys):
    """``a=1 --cfg job b=2``: Hydra's parser alone refuses the override after the flag."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "model=simplecnn", "--cfg", "job", "optimizer.lr=0.123"]) == 0
    out = capsys.readouterr().out
    assert "name: simplecnn" in out and "lr: 0.123" in out


def test_a_search_space_key_the_model_lacks_fails_before_the_sweep_folder(
    tmp_path, monkeypatch, capsys
):
    """conf/hparams_search/digits_optuna.yaml searches model.variant, which simplecnn lacks."""
    refused(
        tmp_path,
        monkeypatch,
        capsys,
        ["-m", "hparams_search=digits_optuna", "model=simplecnn"],
        r"unknown config key 'model.variant'; valid keys under model: dropout, hidden, name, "
        r"widths \(in the search space of hparams_search=digits_optuna\)$",
    )


def test_a_search_space_extreme_is_validated_like_a_command_line_sweep(
    tmp_path, monkeypatch, capsys
):
    space = 'hydra.sweeper.params={optimizer.lr: "interval(-1, 0.1)"}'
    refused(
        tmp_path,
        monkeypatch,
        capsys,
        ["-m", "hparams_search=digits_optuna", space],
        r"optimizer.lr=-1 is invalid: .* \(in the search space of hparams_search=digits_optuna\)",
    )


def test_a_log_interval_from_zero_is_refused(tmp_path, monkeypatch, capsys):
    refused(
        tmp_path,
        monkeypatch,
        capsys,
        ["-m", *TINY, "optimizer.lr=tag(log, interval(0, 0.1))"],
        r"optimizer.lr=tag\(log, interval\(0, 0.1\)\) is invalid: a log-scaled interval",
    )

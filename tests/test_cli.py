"""The command line: help without torch, dispatch, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, cli_env, run_cli

from imgcls import cli
from imgcls.base.errors import UserError


def test_importing_cli_does_not_import_torch():
    code = "import sys, imgcls.cli, imgcls.commands.listing; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_the_key_value_commands_import_no_torch_at_module_level():
    """``imgcls export --help`` and ``imgcls predict model=...`` parse without torch."""
    modules = "imgcls.commands.export, imgcls.commands.predict, imgcls.config.arguments"
    code = f"import sys, {modules}; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def _raising(error: BaseException):
    def command(args):
        raise error

    return lambda name: command


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (UserError("a bad\nvalue"), 2, "imgcls: error: a bad value\n"),
        (KeyboardInterrupt(), 130, "imgcls: interrupted\n"),
        (
            RuntimeError("boom\n  in a frame"),
            1,
            "imgcls: internal error: RuntimeError: boom (set IMGCLS_DEBUG=1 to see the "
            "traceback, and please report it)\n",
        ),
        (ValueError(), 1, "imgcls: internal error: ValueError (set IMGCLS_DEBUG=1"),
    ],
)
def test_every_error_is_one_line_with_its_exit_code(error, code, line, monkeypatch, capsys):
    monkeypatch.delenv("IMGCLS_DEBUG", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(cli, "_command", _raising(error))
    assert cli.main(["list"]) == code
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1, err
    if code != 130:  # IMGCLS_DEBUG=1: the traceback instead of the line
        monkeypatch.setenv("IMGCLS_DEBUG", "1")
        with pytest.raises(type(error)):
            cli.main(["list"])


def test_help_lists_commands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "list" in out and "imgcls train experiment=smoke" in out


def test_python_dash_m_is_the_same_program(tmp_path):
    result = run_cli(["--help"], cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == cli.usage().strip()


def test_unknown_command_exits_2(capsys):
    assert cli.main(["trian"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'trian'" in err and "did you mean 'train'" in err


def test_list_shows_every_group_with_descriptions(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for option in (
        "simplecnn",
        "resnet",
        "digits",
        "synthetic",
        "cosine",
        "label_smoothing",
        "adamw",
        "smoke",
    ):
        assert option in out
    assert "Stochastic gradient descent" in out


def test_list_one_group_with_pattern(capsys):
    assert cli.main(["list", "models", "res*"]) == 0
    out = capsys.readouterr().out
    assert "resnet" in out and "simplecnn" not in out


def test_list_unknown_group_exits_2(capsys):
    assert cli.main(["list", "modle"]) == 2
    assert "did you mean 'model'" in capsys.readouterr().err


def test_train_help_shows_groups_and_options(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:  # Hydra ends its help with sys.exit(0)
        cli.main(["train", "--help"])
    assert done.value.code in (0, None)
    stdout = capsys.readouterr().out
    for text in (
        "model: airbench, alexnet, bncnn, densenet, efficientnet, lenet, resnet, seed_resnet, simplecnn, timm, torchvision, vgg",
        "dataset: cifar10, cifar100, digits, digits_shifted, fashion_mnist, folder, mnist, svhn, synthetic",
        "scheduler:",
        "trainer:",
    ):
        assert text in stdout
    assert not (tmp_path / "outputs").exists()


def test_cfg_job_prints_composed_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--cfg", "job", "model=simplecnn", "optimizer.lr=0.2"]) == 0
    stdout = capsys.readouterr().out
    assert "name: simplecnn" in stdout and "lr: 0.2" in stdout
    assert not (tmp_path / "outputs").exists()


def test_package_root_is_importable_from_repo():
    assert (ROOT / "conf" / "train.yaml").is_file()


@pytest.mark.parametrize("command", [["list", "models"], ["--help"], ["--version"]])
def test_output_cut_short_by_the_reader_is_no_error(tmp_path, command):
    """`imgcls list models | head -1`: a closed pipe ends the program quietly (exit 141)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "imgcls", *command],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    process.stdout.close()  # before the program writes (it takes a second to start): every
    # write meets a closed pipe, as after `head` has read its line; no race with the writer
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141 and stderr == ""

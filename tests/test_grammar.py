"""One grammar: eval, predict and export read ``key=value`` with Hydra's override parser (the
quoting, lists and escapes of ``imgcls train``), report reads its options with argparse, and
every mistake is one line on stderr with exit 2, leaving nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, cli_env
from PIL import Image

from imgcls import cli
from imgcls.commands.evaluate import EVAL
from imgcls.commands.predict import PREDICT


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One finished tiny run (1x8x8 synthetic images, 4 classes)."""
    from imgcls.app.job import train
    from imgcls.config.compose import compose

    root = tmp_path_factory.mktemp("grammar")
    return train(compose([*TINY, "trainer.epochs=1", f"output_root={root}"])).run_dir


@pytest.fixture(scope="module")
def pics(tmp_path_factory) -> Path:
    """A folder whose name holds a space, with two grey images."""
    folder = tmp_path_factory.mktemp("images") / "my pics"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8), 60 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_values_are_read_as_train_reads_them():
    parsed = EVAL.parse(
        ["run=[a,b]", "topk=[1,5]", "out='a,b'", "dataset.noise=0.5", "dataset.classes=[x,y]"]
    )
    assert parsed == {
        "run": ["a", "b"],
        "topk": [1, 5],
        "out": "a,b",
        "dataset.noise": 0.5,
        "dataset.classes": ["x", "y"],
    }
    assert EVAL.parse(["out=a\\,b"]) == {"out": "a,b"}  # an escaped comma
    assert EVAL.parse(['out="my eval/"', "run=x"]) == {"out": "my eval/", "run": ["x"]}
    assert EVAL.parse(["topk=3", "split=val"]) == {"topk": [3], "split": "val"}
    assert EVAL.parse(["out=2026"]) == {"out": "2026"}  # a folder name, not the number
    assert EVAL.parse(["out=x", "out=null"]) == {}  # null: back to the default
    assert PREDICT.parse(["images='pics/[01].png'", "topk=2"]) == {
        "images": "pics/[01].png",
        "topk": 2,
    }


MISTAKES = [
    (
        ["eval", "run=x", "splt=val"],
        "unknown eval key 'splt' — did you mean 'split'? valid keys: run, checkpoint, split",
    ),
    (["predict", "run=x", "image=pics/"], "unknown predict key 'image' — did you mean 'images'?"),
    (["export", "run=x", "fromat=onnx"], "unknown export key 'fromat' — did you mean 'format'?"),
    (["eval", "run"], "imgcls eval: expected key=value, got 'run'"),
    (["eval", "run=a/[01"], "cannot parse 'run=a/[01': "),
    (
        ["predict", "run=x", "images=pics/[01].png"],
        "cannot parse 'images=pics/[01].png': mismatched input '['",
    ),
    (["export", "run=é"], "cannot parse 'run=é': a character that needs quotes"),
    (["eval", "run=a,b"], "run=a,b is a sweep"),
    (["export", "run=x", "format=[onnx,pt2]"], "imgcls export takes one value for format"),
    (["eval", "run=x", "topk=[1,x]"], "topk=[1,x] is invalid: expected integers"),
    (["predict", "run=x", "images=p", "topk=2.5"], "topk=2.5 is invalid: expected an integer"),
    (["eval", "run=x", "+dataset.noise=1"], "not '+dataset.noise=1'"),
    (["report", "--plots", "x"], "unknown report option '--plots' — did you mean '--plot'?"),
    (["report", "x", "--htm"], "unknown report option '--htm' — did you mean '--html'?"),
    (["report", "x", "--out"], "imgcls report: argument --out: expected one argument"),
    (["report", "--plot"], "imgcls report needs at least one run or sweep directory"),
]


@pytest.mark.parametrize(("args", "message"), MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_a_mistake_is_one_line_and_exit_2(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("IMGCLS_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("imgcls: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert not list(tmp_path.iterdir())  # nothing made


def test_report_help_is_argparse_help(capsys):
    assert cli.main(["report", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: imgcls report")
    assert all(option in out for option in ("--html", "--plot", "--out PATH", "DIR"))


def test_quoted_values_and_escapes_reach_the_command(run, pics, tmp_path):
    """A folder with a space, an output folder with a comma (quoted, then escaped)."""
    args = ["predict", f"run={run}", f"images='{pics}'", f'out="{tmp_path}/a,b"', "topk=2"]
    assert cli.main([*args, "device=cpu"]) == 0
    document = json.loads((tmp_path / "a,b" / "predictions.json").read_text())
    assert sorted(Path(r["file"]).name for r in document["predictions"]) == ["0.png", "1.png"]
    args = ["eval", f"run=[{run}]", f"out={tmp_path}/x\\,y", "topk=[1,2]", "device=cpu"]
    assert cli.main(args) == 0
    metrics = json.loads((tmp_path / "x,y" / "metrics.json").read_text())
    assert metrics["runs"] == [str(run)] and "top2_accuracy" in metrics


def imgcls(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The installed ``imgcls`` program (``python -m imgcls`` where no script is installed)."""
    script = Path(sys.executable).parent / "imgcls"
    program = [str(script)] if script.is_file() else [sys.executable, "-m", "imgcls"]
    return subprocess.run(
        [*program, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=cli_env()
    )


def test_eval_predict_export_report_through_the_executable(run, pics, tmp_path, capsys):
    """The installed program reads a quoted folder with a space, and report's options; eval and
    export, the same main() on the same argv, run in-process (each program started here
    imports torch: 4 s of CPU for nothing new)."""
    args = ["eval", f"run={run}", f"out={tmp_path}/eval", "topk=[1,2]", "device=cpu"]
    assert cli.main(args) == 0
    assert "top2_accuracy" in json.loads((tmp_path / "eval" / "metrics.json").read_text())
    result = imgcls(
        ["predict", f"run={run}", f"images={pics}", f"out='{tmp_path}/my out'"], tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "2 images classified, 0 skipped" in result.stdout
    assert (tmp_path / "my out" / "predictions.csv").is_file()
    out = tmp_path / "export"
    assert cli.main(["export", f"run={run}", "format=torchscript", f"out={out}"]) == 0
    assert (out / "model.pt").is_file() and (out / "export.json").is_file()
    result = imgcls(["report", str(run.parent), "--out", str(tmp_path / "board")], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "board" / "leaderboard.csv").is_file()
    result = imgcls(["report", str(run.parent), "--plots"], tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "unknown report option '--plots'" in result.stderr
    capsys.readouterr()
    assert cli.main(["eval", f"run={run}", "split=train,val"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "split=train,val is a sweep" in err, err

"""A seeded fuzz of damaged run files: resume, eval and report each answer in one line.

Every case damages one file of a copy of one tiny run (random truncations, garbage bytes,
0-byte files, values of the wrong type in summary.json, config.yaml, overrides.yaml and
metrics.csv, damaged checkpoints) and runs ``imgcls.cli.main`` in-process on it:

- ``train resume=<copy>`` and ``eval run=<copy>`` refuse with exit 2 and exactly one stderr
  line naming the damaged file, without a traceback or "internal error";
- ``report --html <copy>`` lists what it can read and exits 0 without a word on stderr;

and in every case no file of the copy changed and no new file was left in it. The cases
are generated from fixed seeds, so a failure names a case that can be run again.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ONE_EPOCH

from imgcls import cli

SEED = 22


@dataclass(frozen=True)
class Case:
    """One damaged file: which, how (a name for the test id) and the bytes it then holds."""

    file: str
    how: str
    data: bytes | None = None  # None: built from the intact file by ``damage``
    cut: float | None = None  # a truncation: keep this fraction of the file

    @property
    def id(self) -> str:
        return f"{self.file}-{self.how}"

    def damage(self, run: Path) -> None:
        path = run / self.file
        if self.cut is not None:
            whole = path.read_bytes()
            path.write_bytes(whole[: int(len(whole) * self.cut)])
        else:
            path.write_bytes(self.data or b"")


def _checkpoint_bytes(state: object) -> bytes:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _generate() -> tuple[list[Case], list[Case], list[Case]]:
    """The resume, eval and report cases, from one seeded generator."""
    rng = random.Random(SEED)

    def garbage(n: int) -> bytes:
        return bytes(rng.randrange(256) for _ in range(n))

    def common(file: str, cuts: int, low: float = 0.05, high: float = 0.8) -> list[Case]:
        cases = [Case(file, "empty", b""), Case(file, "garbage", garbage(rng.randrange(8, 400)))]
        cases += [Case(file, f"cut{i}", cut=rng.uniform(low, high)) for i in range(cuts)]
        return cases

    config_types = [
        b"- model\n- dataset\n",
        b"42\n",
        b"null\n",
        b"model: [1, 2]\ndataset: 5\noptimizer: x\nscheduler: {}\ntrainer: []\nseed: abc\n",
        b"model: {name: simplecnn}\n",  # a mapping without the other sections
        b"trainer:\n  epochs: [\n",
    ]
    summary_types = [
        b"[1, 2, 3]",
        b"null",
        b'"interrupted"',
        b'{"status": 7}',
        b'{"status": ["interrupted"]}',
        b'{"status": null, "pid": "x"}',
        b'{"status": "paused"}',
    ]
    overrides_types = [b"seed: 1\n", b"[1, 2]\n", b"- [a, b]\n", b"'seed=1'\n", b"[\n"]
    metrics_headers = [
        b"\xff\xfe\x00\x01\n1,2,3\n",
        b"1,6,0.0003,1.5\n2,12,0.003,1.4\n",  # rows without their header
        b"epoch;step;lr\n1;6;0.1\n",
    ]
    resume = [
        *common(".hydra/config.yaml", 4),
        *[Case(".hydra/config.yaml", f"type{i}", d) for i, d in enumerate(config_types)],
        *common("summary.json", 3, high=0.95),
        *[Case("summary.json", f"type{i}", d) for i, d in enumerate(summary_types)],
        Case(".hydra/overrides.yaml", "garbage", b"\x00\x01\x02" + garbage(60)),
        *[Case(".hydra/overrides.yaml", f"type{i}", d) for i, d in enumerate(overrides_types)],
        *[Case("metrics.csv", f"header{i}", d) for i, d in enumerate(metrics_headers)],
        *common("checkpoints/last.pt", 3, high=0.95),
    ]
    eval_cases = common("checkpoints/best.pt", 3, high=0.95)
    report = [
        *common("summary.json", 2, high=0.95),
        *[Case("summary.json", f"type{i}", d) for i, d in enumerate(summary_types[:4])],
        *common("metrics.csv", 2, high=0.95),
        *[Case("metrics.csv", f"header{i}", d) for i, d in enumerate(metrics_headers)],
        *common(".hydra/config.yaml", 1),
        *common(".hydra/overrides.yaml", 1),
        *[Case(".hydra/overrides.yaml", f"type{i}", d) for i, d in enumerate(overrides_types)],
        *common("test_metrics.json", 1),
    ]
    return resume, eval_cases, report


def _checkpoint_cases() -> list[Case]:
    """Checkpoints that torch loads but that hold the wrong things (made when collected)."""
    return [
        Case("checkpoints/last.pt", "list", _checkpoint_bytes([1, 2, 3])),
        Case("checkpoints/last.pt", "no-model", _checkpoint_bytes({"epoch": 1})),
        Case("checkpoints/last.pt", "model-int", _checkpoint_bytes({"model": 5})),
        Case(
            "checkpoints/last.pt",
            "bad-counts",
            _checkpoint_bytes({"model": {}, "epoch": -1, "step": "6", "rng": {}}),
        ),
    ]


RESUME, EVAL, REPORT = _generate()
RESUME += _checkpoint_cases()
EVAL += [Case(c.file.replace("last", "best"), c.how, c.data) for c in _checkpoint_cases()[:3]]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One finished one-epoch run, made once; every case damages a copy of it."""
    from imgcls.app.job import train
    from imgcls.config.compose import compose

    root = tmp_path_factory.mktemp("fuzz_runfiles")
    return train(compose([*ONE_EPOCH, f"output_root={root}"])).run_dir


def _copy(run: Path, where: Path, unfinished: bool) -> Path:
    """A copy of ``run``; ``unfinished``: as if stopped after epoch 1 of 2 (resumable)."""
    copy = where / "run"
    shutil.copytree(run, copy)
    if unfinished:
        config = copy / ".hydra" / "config.yaml"
        config.write_text(config.read_text().replace("epochs: 1\n", "epochs: 2\n", 1))
        summary = json.loads((copy / "summary.json").read_text())
        summary.update(status="interrupted", pid=None)
        (copy / "summary.json").write_text(json.dumps(summary))
    return copy


def _state(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
        for p in folder.rglob("*")
    }


def _run(capsys, monkeypatch, where: Path, args: list[str], code: int) -> str:
    monkeypatch.chdir(where)
    monkeypatch.delenv("IMGCLS_DEBUG", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    assert cli.main(args) == code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert "internal error" not in captured.err
    return captured.err.strip()


def _refused(capsys, monkeypatch, copy: Path, case: Case, args: list[str]) -> None:
    before = _state(copy)
    err = _run(capsys, monkeypatch, copy.parent, args, 2)
    assert len(err.splitlines()) == 1 and err.startswith("imgcls: error: "), err
    named = case.file.split("/")[-1]
    assert named in err or str(copy) in err, err
    assert _state(copy) == before, "a file of the run changed or was left behind"


@pytest.mark.parametrize("case", RESUME, ids=[c.id for c in RESUME])
def test_resume_refuses_a_damaged_run_file(tiny_run, tmp_path, capsys, monkeypatch, case):
    copy = _copy(tiny_run, tmp_path, unfinished=True)
    case.damage(copy)
    _refused(capsys, monkeypatch, copy, case, ["train", f"resume={copy}"])


@pytest.mark.parametrize("case", EVAL, ids=[c.id for c in EVAL])
def test_eval_refuses_a_damaged_checkpoint(tiny_run, tmp_path, capsys, monkeypatch, case):
    copy = _copy(tiny_run, tmp_path, unfinished=False)
    case.damage(copy)
    _refused(capsys, monkeypatch, copy, case, ["eval", f"run={copy}"])


@pytest.mark.parametrize("case", REPORT, ids=[c.id for c in REPORT])
def test_report_lists_a_run_with_a_damaged_file(tiny_run, tmp_path, capsys, monkeypatch, case):
    copy = _copy(tiny_run, tmp_path, unfinished=False)
    case.damage(copy)
    before = _state(copy)
    out = tmp_path / "out" / "report.html"
    err = _run(capsys, monkeypatch, tmp_path, ["report", "--html", str(copy), "--out", str(out)], 0)
    assert err == ""
    assert out.is_file() and "<html" in out.read_text(encoding="utf-8").lower()
    assert _state(copy) == before, "a file of the run changed or was left behind"


def test_the_fuzz_is_seeded_and_large_enough():
    again = _generate()
    assert [c.id for c in again[0]] == [c.id for c in RESUME[: len(again[0])]]
    assert [c.data for c in again[0]] == [c.data for c in RESUME[: len(again[0])]]
    assert len(RESUME) + len(EVAL) + len(REPORT) >= 40
    assert all(re.fullmatch(r"[\w./-]+", c.id) for c in [*RESUME, *EVAL, *REPORT])

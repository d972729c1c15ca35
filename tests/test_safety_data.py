"""Images decoded faithfully, and damaged dataset files refused in one line.

Deeper-than-8-bit grayscale is scaled to 8 bits by its range (never clipped to white), the
EXIF orientation is applied, and training, preview and both kinds of predict decode a file
the same way (one function, :func:`imgcls.base.images.open_image`). A damaged MNIST/Fashion-
MNIST IDX file or CIFAR pickle is exit code 2 with one line naming the file: never an
"internal error", never a huge allocation, nothing left behind.
"""

from __future__ import annotations

import gzip
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import CPU, SMALL_MODEL, snapshot
from fabricate import (
    gray_levels,
    gzip_idx,
    write_cifar10,
    write_gray_folder,
    write_idx,
    write_svhn,
)
from PIL import Image

from imgcls import cli
from imgcls.app.prediction import load_image
from imgcls.base.errors import UnreadableImageError, UserError
from imgcls.base.images import open_image
from imgcls.data.files import read_image
from imgcls.registry import DATASETS

# -- decoding ------------------------------------------------------------------------------
RAMP = np.array([[0, 128, 129, 257, 1000, 32768, 65535]], dtype=np.uint16)
EIGHT = np.array([[0, 0, 1, 1, 4, 128, 255]], dtype=np.uint8)  # round(v / 257)


def _save_deep(path: Path, kind: str) -> Path:
    """RAMP saved as ``kind``: a 16-bit PNG, a 16-bit TIFF of either byte order, a 32-bit
    integer TIFF."""
    if kind in ("I;16 png", "I;16 tiff"):
        Image.fromarray(RAMP).save(path)
    elif kind == "I;16B tiff":
        Image.frombuffer("I;16B", RAMP.shape[::-1], RAMP.astype(">u2").tobytes()).save(path)
    elif kind == "I tiff":
        Image.fromarray(RAMP.astype(np.int32)).save(path)
    return path


@pytest.mark.parametrize(
    ("kind", "suffix"),
    [("I;16 png", "png"), ("I;16 tiff", "tif"), ("I;16B tiff", "tif"), ("I tiff", "tif")],
)
def test_deep_grayscale_is_scaled_by_its_range_not_clipped(kind, suffix, tmp_path):
    path = _save_deep(tmp_path / f"ramp.{suffix}", kind)
    assert np.array_equal(np.asarray(open_image(path, "L")), EIGHT)
    rgb = np.asarray(open_image(path, "RGB"))
    assert all(np.array_equal(rgb[..., c], EIGHT) for c in range(3))


def test_float_grayscale_of_0_to_1_is_scaled_by_255(tmp_path):
    values = np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32)
    Image.fromarray(values).save(tmp_path / "f.tif")
    assert np.asarray(open_image(tmp_path / "f.tif", "L")).tolist() == [[0, 64, 128, 255]]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.array([[0, 70000]], dtype=np.int32), r"32-bit integer pixels range from 0 to 70000"),
        (np.array([[-5, 10]], dtype=np.int32), r"range from -5 to 10; .* 0\.\.65535 only"),
        (np.array([[0.0, 2.5]], dtype=np.float32), r"float pixels have values from 0 to 2\.5"),
        (np.array([[0.0, np.nan]], dtype=np.float32), r"NaN or infinite values"),
    ],
)
def test_images_outside_the_rule_are_refused_naming_the_file(array, message, tmp_path):
    path = tmp_path / "deep.tif"
    Image.fromarray(array).save(path)
    with pytest.raises(
        UnreadableImageError, match=f"cannot read image file {re.escape(str(path))}: .*{message}"
    ):
        open_image(path, "L")


def test_exif_orientation_is_applied(tmp_path):
    """A photo taken sideways (EXIF orientation 6: rotate 90° clockwise to view) comes out
    upright: tall, with what was its left column on top."""
    pixels = np.zeros((16, 32), dtype=np.uint8)
    pixels[:, :8] = 255  # the stored image's left quarter is white
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "sideways.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    upright = np.asarray(open_image(path, "L"))
    assert upright.shape == (32, 16)
    assert upright[:6].mean() > 240 and upright[10:].mean() < 15


def test_training_predict_and_preview_decode_the_same_pixels(tmp_path):
    """One file, three readers: the folder dataset (training and preview), and predict's
    (run= and model=): all give round(v / 257) of the 16-bit values."""
    picture = gray_levels(1, 1, side=8)[0]
    path = tmp_path / "one.png"
    Image.fromarray(picture).save(path)
    expected = np.rint(picture / 257).astype(np.uint8)
    assert np.array_equal(read_image(str(path), 1, 8)[0], expected)
    assert np.array_equal(load_image(path, 1, (8, 8))[0], expected)
    assert np.array_equal(read_image(str(path), 3, 8), np.stack([expected] * 3))
    assert np.array_equal(load_image(path, 3, (8, 8)), np.stack([expected] * 3))


# -- a 16-bit folder trains, previews and predicts like its 8-bit copy ----------------------
FOLDER = [
    "dataset=folder",
    "dataset.channels=1",
    "dataset.image_size=8",
    "dataset.val_fraction=0.25",
    "dataset.test_fraction=0.25",
    "dataset.stats_images=100",
    "model=simplecnn",
    "model.widths=[8]",
    "model.hidden=16",
    "trainer.epochs=4",
    "trainer.batch_size=8",
    *CPU,
]


@pytest.fixture(scope="module")
def gray_runs(tmp_path_factory) -> dict[int, dict[str, Path]]:
    """The same pictures as 16-bit PNGs and as their 8-bit copies, a run trained on each."""
    from imgcls.app.job import train
    from imgcls.config.compose import compose

    root = tmp_path_factory.mktemp("gray")
    runs = {}
    for bits in (16, 8):
        folder = write_gray_folder(root / f"gray{bits}", bits=bits)
        cfg = compose([*FOLDER, f"dataset.root={folder}", f"output_root={root / f'out{bits}'}"])
        runs[bits] = {"folder": folder, "run": train(cfg).run_dir}
    return runs


def _test_accuracy(run: Path) -> float:
    return json.loads((run / "summary.json").read_text())["test"]["accuracy"]


def test_a_16_bit_folder_trains_as_well_as_its_8_bit_copy(gray_runs):
    """Clipped to 8 bits, every 16-bit picture would be white and the run at chance."""
    sixteen, eight = (_test_accuracy(gray_runs[b]["run"]) for b in (16, 8))
    assert sixteen == eight and sixteen >= 0.9


def test_preview_of_a_16_bit_folder_shows_its_8_bit_pixels(gray_runs):
    from imgcls.app import build
    from imgcls.app.preview import compose_preview

    images = []
    for bits in (16, 8):
        root = gray_runs[bits]["folder"]
        cfg = compose_preview([*FOLDER[:6], f"dataset.root={root}", "augment=none"])
        images.append(build.build_dataset(cfg).train.materialize().images)
    assert images[0].equal(images[1])


def _probabilities(out: Path) -> list[list[float]]:
    records = json.loads((out / "predictions.json").read_text())["predictions"]
    return [[t["probability"] for t in r["top"]] for r in records]


def test_predict_run_gives_a_16_bit_file_the_same_answer_as_its_8_bit_copy(
    gray_runs, tmp_path, capsys
):
    run = gray_runs[16]["run"]
    for bits in (16, 8):
        folder = gray_runs[bits]["folder"]
        args = ["predict", f"run={run}", f"images={folder}", f"out={tmp_path / str(bits)}"]
        assert cli.main([*args, "device=cpu"]) == 0, capsys.readouterr().err
    assert _probabilities(tmp_path / "16") == _probabilities(tmp_path / "8")


def test_predict_onnx_gives_a_16_bit_file_the_same_answer_as_its_8_bit_copy(
    gray_runs, tmp_path, capsys
):
    pytest.importorskip("onnxruntime", reason="needs the 'export' extra")
    run = gray_runs[16]["run"]
    assert cli.main(["export", f"run={run}", f"out={tmp_path / 'export'}"]) == 0
    model = next((tmp_path / "export").rglob("model.onnx"))
    for bits in (16, 8):
        folder = gray_runs[bits]["folder"]
        args = ["predict", f"model={model}", f"images={folder}", f"out={tmp_path / str(bits)}"]
        assert cli.main([*args, "device=cpu"]) == 0, capsys.readouterr().err
    assert _probabilities(tmp_path / "16") == _probabilities(tmp_path / "8")


def test_predict_skips_an_image_outside_the_rule_naming_it(gray_runs, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(gray_levels(1, 1)[0]).save(images / "good.png")
    Image.fromarray(np.full((8, 8), 2.0, dtype=np.float32)).save(images / "bright.tif")
    run, out = gray_runs[16]["run"], tmp_path / "out"
    assert cli.main(["predict", f"run={run}", f"images={images}", f"out={out}", "device=cpu"]) == 0
    err = capsys.readouterr().err
    assert f"skipped {images / 'bright.tif'}: cannot read it as an image" in err
    assert "float grayscale of 0..1 only" in err
    document = json.loads((out / "predictions.json").read_text())
    assert [Path(r["file"]).name for r in document["predictions"]] == ["good.png"]


def test_a_32_bit_folder_out_of_range_stops_training_naming_the_file(tmp_path, capsys):
    root = write_gray_folder(tmp_path / "gray32", bits=32)
    bad = root / "class1" / "20.tif"
    Image.fromarray(np.full((8, 8), 100000, dtype=np.int32)).save(bad)
    err = refused(tmp_path, capsys, "folder", root, rf"cannot read image file {bad}: 32-bit")
    assert "0..65535 only" in err


# -- damaged dataset files -----------------------------------------------------------------
def refused(ws: Path, capsys, dataset: str, root: Path, message: str) -> str:
    """``imgcls train dataset=<dataset> dataset.root=<root>`` in the workspace ``ws``: exit
    code 2, one stderr line matching ``message`` without a traceback or "internal error",
    and the workspace exactly as it was (the output root exists beforehand, empty)."""
    (ws / "outputs").mkdir(exist_ok=True)
    before = snapshot(ws)
    argv = ["train", *SMALL_MODEL, f"dataset={dataset}", f"dataset.root={root}"]
    if dataset == "folder":
        argv += ["dataset.channels=1", "dataset.image_size=8", "trainer.batch_size=2"]
    code = cli.main([*argv, f"output_root={ws / 'outputs'}"])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("imgcls: error: "), err
    assert "Traceback" not in captured.err + captured.out and "internal error" not in err
    assert re.search(message, err), err
    assert snapshot(ws) == before, "the workspace changed"
    return err


def load_refused(dataset: str, root: Path, message: str) -> str:
    """Building ``dataset`` from ``root`` (what ``imgcls train`` does first, without the
    seconds of composing its config) raises a UserError: one line matching ``message``."""
    with pytest.raises(UserError) as caught:
        DATASETS.build(dataset, {"root": str(root)}, prefix="dataset")
    text = str(caught.value)
    assert "\n" not in text and re.search(message, text), text
    return text


def _mnist(tmp_path: Path) -> tuple[Path, Path]:
    root = write_idx(tmp_path / "data", "MNIST/raw", gz=True, n=(40, 20))
    return root, root / "MNIST" / "raw"


def _flip(path: Path, offset: int, mask: int = 0x10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


LABELS = "train-labels-idx1-ubyte.gz"
IMAGES = "train-images-idx3-ubyte.gz"


def _corrupt_stream(raw: Path) -> str:
    _flip(raw / IMAGES, len((raw / IMAGES).read_bytes()) // 2)
    return IMAGES


def _truncated(raw: Path) -> str:
    data = (raw / IMAGES).read_bytes()
    (raw / IMAGES).write_bytes(data[: len(data) // 2])
    return IMAGES


def _not_gzip(raw: Path) -> str:
    (raw / LABELS).write_bytes(np.random.default_rng(0).bytes(200))
    return LABELS


def _claims_terabytes(raw: Path) -> str:
    header = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (2**31, 2**16, 28))
    (raw / IMAGES).write_bytes(gzip.compress(header + bytes(100)))
    return IMAGES


def _negative_labels(raw: Path) -> str:
    labels = np.arange(40) % 10
    labels[0] = -1
    gzip_idx(raw / LABELS, labels, 0x09)
    return LABELS


def _labels_out_of_range(raw: Path) -> str:
    gzip_idx(raw / LABELS, np.arange(40) % 12)
    return LABELS


def _float_labels(raw: Path) -> str:
    gzip_idx(raw / LABELS, np.arange(40) % 10, 0x0D)
    return LABELS


def _flat_images(raw: Path) -> str:
    gzip_idx(raw / IMAGES, np.zeros((40, 784), dtype=np.uint8))
    return IMAGES


def _short_data(raw: Path) -> str:
    header = bytes([0, 0, 8, 1]) + (40).to_bytes(4, "big")
    (raw / LABELS).write_bytes(gzip.compress(header + bytes(30)))
    return LABELS


def _no_images(raw: Path) -> str:
    gzip_idx(raw / IMAGES.replace("train", "t10k"), np.zeros((0, 28, 28), dtype=np.uint8))
    gzip_idx(raw / LABELS.replace("train", "t10k"), np.zeros(0, dtype=np.uint8))
    return IMAGES.replace("train", "t10k")


IDX_DAMAGE = [
    (_corrupt_stream, r"cannot read IDX file {file}: "),
    (_truncated, r"cannot read IDX file {file}: .*(ended|EOF)"),
    (_not_gzip, r"cannot read IDX file {file}: .*gzip"),
    (_claims_terabytes, r"{file} is truncated or corrupt: its header says .* more than its"),
    (_negative_labels, r"{file} has labels from -1 to 9; expected 0\.\.9"),
    (_labels_out_of_range, r"{file} has labels from 0 to 11; expected 0\.\.9"),
    (_float_labels, r"{file} holds >f4 data of shape \(40,\): expected integers"),
    (_flat_images, r"{file} holds uint8 data of shape \(40, 784\): expected unsigned bytes"),
    (_short_data, r"{file} is truncated or corrupt: header says \(40,\), 30 bytes"),
    (_no_images, r"{file} holds no images"),
]


@pytest.mark.parametrize(("damage", "message"), IDX_DAMAGE, ids=[d.__name__ for d, _ in IDX_DAMAGE])
def test_a_damaged_idx_file_is_one_line_naming_it(damage, message, tmp_path):
    root, raw = _mnist(tmp_path)
    file = raw / damage(raw)
    load_refused("mnist", root, message.format(file=re.escape(str(file))))


def test_a_corrupt_gz_stops_imgcls_train_in_one_line(tmp_path, capsys):
    root, raw = _mnist(tmp_path)
    file = raw / _corrupt_stream(raw)
    refused(tmp_path, capsys, "mnist", root, rf"cannot read IDX file {re.escape(str(file))}: ")


def test_an_idx_file_longer_than_its_header_says_is_refused(tmp_path):
    root = write_idx(tmp_path / "data", "MNIST/raw", n=(40, 20))
    file = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    file.write_bytes(file.read_bytes() + b"\0")
    load_refused("mnist", root, rf"{re.escape(str(file))} is truncated or corrupt")


# CIFAR pickles, each written into test_batch of an otherwise valid CIFAR-10 folder
def _batch(labels=None, data=None) -> bytes:
    """A CIFAR-10 batch of four images, with the labels or the data given."""
    batch = {
        b"labels": [0, 1, 2, 3] if labels is None else labels,
        b"data": np.zeros((4, 3072), dtype=np.uint8) if data is None else data,
    }
    return pickle.dumps(batch, protocol=2)


class _Calls:
    """An object that pickles as a call of ``function(*args)`` (optionally with a state)."""

    def __init__(self, function, args, state=None):
        self.call = (function, args) if state is None else (function, args, state)

    def __reduce__(self):
        return self.call


def _numpy_reconstruct():
    """NumPy's array reconstructor, as an array's pickle names it."""
    return np.zeros(1).__reduce__()[0]


def _terabyte_start() -> bytes:
    return pickle.dumps({b"data": _Calls(_numpy_reconstruct(), (np.ndarray, (2**40,), b"B"))})


def _terabyte_state() -> bytes:
    state = (1, (2**40, 3072), np.dtype("u1"), False, b"\0" * 16)
    call = _Calls(_numpy_reconstruct(), (np.ndarray, (0,), b"B"), state)
    return pickle.dumps({b"data": call, b"labels": [0]}, protocol=2)


def _ndarray_called() -> bytes:
    return pickle.dumps({b"data": _Calls(np.ndarray, ((2**40,),))}, protocol=2)


CIFAR_DAMAGE = [
    ("memo_slot_4g", b"\x80\x02}r\xff\xff\xff\xff.", r"memo slot 4294967295"),
    ("bytes8_of_1tb", b"\x80\x04\x8e" + (2**40).to_bytes(8, "little") + b"abc.", r"expected"),
    ("truncated", _batch()[:-500], r"ValueError: (expected|pickle exhausted)"),
    ("empty", b"", r"ValueError: (expected|pickle exhausted)"),
    ("runs_code", b"cos\nsystem\n(S'echo pwned'\ntR.", r"refusing to load os\.system"),
    ("terabyte_start", _terabyte_start(), r"an array without its data"),
    ("terabyte_state", _terabyte_state(), r"shape \(1099511627776, 3072\)"),
    ("ndarray_called", _ndarray_called(), r"an array without its data|not a CIFAR batch"),
    ("label_overflow", _batch(labels=[2**70, 0, 1, 2]), r"a label too large for 64"),
    ("label_negative", _batch(labels=[-1, 0, 1, 2]), r"a label -1 in 'labels'"),
    ("label_text", _batch(labels=["a", 0, 1, 2]), r"a label of type str"),
    ("labels_short", _batch(labels=[0]), r"has 1 'labels' for 4 images"),
    ("data_float", _batch(data=np.zeros((4, 3072))), r"data of type float64"),
    ("data_list", _batch(data=[[0] * 3072] * 4), r"data of type list"),
    ("data_shape", _batch(data=np.zeros((4, 100), np.uint8)), r"shape \(4, 100\)"),
    ("not_a_dict", pickle.dumps([1, 2, 3]), r"not a CIFAR batch \(expected a dict, got list"),
    ("object_array", _batch(data=np.array([None] * 4)), r"type object"),
]


@pytest.mark.parametrize(
    ("data", "message"), [c[1:] for c in CIFAR_DAMAGE], ids=[c[0] for c in CIFAR_DAMAGE]
)
def test_a_damaged_cifar_pickle_is_one_line_naming_it(data, message, tmp_path):
    root = write_cifar10(tmp_path / "data", per_batch=4, test=4)
    file = root / "cifar-10-batches-py" / "test_batch"
    file.write_bytes(data)
    load_refused("cifar10", root, rf"{re.escape(str(file))}.*{message}")


def test_a_cifar_pickle_asking_for_terabytes_stops_imgcls_train_in_one_line(tmp_path, capsys):
    root = write_cifar10(tmp_path / "data", per_batch=4, test=4)
    file = root / "cifar-10-batches-py" / "data_batch_3"
    file.write_bytes(_terabyte_state())
    refused(tmp_path, capsys, "cifar10", root, rf"cannot read CIFAR pickle {re.escape(str(file))}")


def test_a_cifar_meta_file_without_class_names_is_named(tmp_path):
    root = write_cifar10(tmp_path / "data", per_batch=4, test=4)
    meta = root / "cifar-10-batches-py" / "batches.meta"
    meta.write_bytes(pickle.dumps({b"label_names": 5}))
    load_refused("cifar10", root, rf"{re.escape(str(meta))} has no list of class")


# SVHN .mat files
@pytest.mark.parametrize("cut", [10, 200, 3000])
def test_a_cut_svhn_file_is_one_line_naming_it(cut, tmp_path):
    root = write_svhn(tmp_path / "data", n=(20, 10))
    file = root / "train_32x32.mat"
    file.write_bytes(file.read_bytes()[:cut])
    load_refused("svhn", root, rf"cannot read SVHN file {re.escape(str(file))}: ")


def test_svhn_images_that_are_not_bytes_are_named(tmp_path):
    import scipy.io

    root = write_svhn(tmp_path / "data", n=(20, 10))
    file = root / "test_32x32.mat"
    x = np.full((32, 32, 3, 10), 300.0)
    scipy.io.savemat(str(file), {"X": x, "y": np.ones((10, 1))})
    load_refused("svhn", root, rf"{re.escape(str(file))} holds X of type float64")

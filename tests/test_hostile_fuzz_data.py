"""A seeded fuzz of damaged dataset files: every one is one line, exit code 2, nothing changed.

Each case copies a valid dataset (gzipped MNIST IDX files, a CIFAR-10 folder of pickles, a
folder of PNGs), damages one file the way a disk, a download or an attacker would (random
truncation, random bit flips, hostile pickle opcodes), and runs ``imgcls train`` on it
in-process. It must fail while the data loads: exit code 2, exactly one stderr line naming
the damaged file, no traceback, no "internal error", and the workspace as it was.

The damage always breaks the file (a flip in a gzip stream fails its CRC, a flip in a PNG's
signature or header fails its checksum, a cut pickle loses its STOP, ...), so a case passing
would be a file imgcls reads as valid when it is not.
"""

from __future__ import annotations

import io
import pickletools
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from fabricate import write_cifar10, write_folder, write_idx
from test_safety_data import refused

SEEDS = range(8)  # 8 seeds x 4 kinds of damage = 32 cases
IDX_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict[str, Path]:
    """The valid datasets each case copies before damaging one file."""
    root = tmp_path_factory.mktemp("pristine")
    return {
        "mnist": write_idx(root / "mnist", "MNIST/raw", gz=True, n=(40, 20)),
        "cifar10": write_cifar10(root / "cifar10", per_batch=4, test=4),
        "folder": write_folder(root / "folder", classes=("a", "b"), per_class=4),
    }


def _copy(pristine: dict[str, Path], name: str, ws: Path) -> Path:
    return Path(shutil.copytree(pristine[name], ws / "data"))


def _truncate_or_flip(data: bytes, rng: np.random.Generator, flip_range: tuple[int, int]) -> bytes:
    """Cut at a random point, or flip 1 to 3 random bits within ``flip_range``."""
    if rng.random() < 0.5:
        return data[: int(rng.integers(1, len(data)))]
    damaged = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        damaged[int(rng.integers(*flip_range))] ^= 1 << int(rng.integers(8))
    return bytes(damaged)


# -- IDX: a gzip stream cut or flipped (its CRC catches any change of the data) ------------
@pytest.mark.parametrize("seed", SEEDS)
def test_damaged_gzip_idx_file(seed, pristine, tmp_path, capsys):
    rng = np.random.default_rng(seed)
    root = _copy(pristine, "mnist", tmp_path)
    file = root / "MNIST" / "raw" / IDX_FILES[int(rng.integers(len(IDX_FILES)))]
    data = file.read_bytes()
    # flips stay inside the deflate stream: before it lie the gzip header's time stamp and
    # OS byte, and deflate's last byte may end in unused padding bits
    file.write_bytes(_truncate_or_flip(data, rng, (10, len(data) - 9)))
    refused(tmp_path, capsys, "mnist", root, rf"{re.escape(str(file))}")


# -- CIFAR: a batch pickle cut, or an opcode byte flipped ----------------------------------
def _opcode_positions(data: bytes) -> list[int]:
    return [pos for _, _, pos in pickletools.genops(io.BytesIO(data))]


@pytest.mark.parametrize("seed", SEEDS)
def test_damaged_cifar_batch(seed, pristine, tmp_path, capsys):
    rng = np.random.default_rng(100 + seed)
    root = _copy(pristine, "cifar10", tmp_path)
    file = root / "cifar-10-batches-py" / f"data_batch_{int(rng.integers(1, 6))}"
    data = file.read_bytes()
    if seed % 2 == 0:
        damaged = data[: int(rng.integers(1, len(data)))]
    else:  # flip bits of the opcodes that build the dict, its keys and lists
        positions = _opcode_positions(data)
        damaged_bytes = bytearray(data)
        for position in rng.choice(positions, size=2, replace=False):
            damaged_bytes[int(position)] ^= 1 << int(rng.integers(8))
        damaged = bytes(damaged_bytes)
    file.write_bytes(damaged)
    refused(tmp_path, capsys, "cifar10", root, rf"{re.escape(str(file))}")


# -- CIFAR: hostile pickles made of random opcodes that ask for code or memory -------------
def _hostile_pickle(rng: np.random.Generator) -> bytes:
    huge = int(rng.integers(2**33, 2**62))
    forbidden = ["os\nsystem", "builtins\neval", "subprocess\nPopen", "numpy\nload", "posix\nfork"]
    choices = [
        # a memo slot far beyond the file: the unpickler would size its memo to it
        lambda: b"\x80\x02}r" + struct.pack("<I", int(rng.integers(2**20, 2**32))) + b".",
        # bytes, text or a long integer whose length names terabytes
        lambda: b"\x80\x04\x8e" + struct.pack("<Q", huge) + rng.bytes(16) + b".",
        lambda: b"\x80\x04\x8d" + struct.pack("<Q", huge) + rng.bytes(16) + b".",
        lambda: b"\x80\x02\x8b" + struct.pack("<i", 2**31 - 1) + rng.bytes(16) + b".",
        # a global that would run code
        lambda: b"c" + forbidden[int(rng.integers(len(forbidden)))].encode() + b"\n(S'x'\ntR.",
        # NumPy's array reconstructor asked for an array of terabytes
        lambda: (
            b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
            b"\x8a\x08" + struct.pack("<q", huge) + b"\x85C\x01B\x87R."
        ),
        # random opcodes after a protocol header
        lambda: b"\x80\x02" + rng.bytes(int(rng.integers(1, 64))),
    ]
    return choices[int(rng.integers(len(choices)))]()


@pytest.mark.parametrize("seed", SEEDS)
def test_hostile_cifar_pickle(seed, pristine, tmp_path, capsys):
    rng = np.random.default_rng(200 + seed)
    root = _copy(pristine, "cifar10", tmp_path)
    file = root / "cifar-10-batches-py" / ("test_batch" if seed % 2 else "batches.meta")
    file.write_bytes(_hostile_pickle(rng))
    refused(tmp_path, capsys, "cifar10", root, rf"{re.escape(str(file))}")


# -- a folder dataset with one PNG cut inside its pixel data, or its header flipped ---------
@pytest.mark.parametrize("seed", SEEDS)
def test_damaged_png_in_a_folder_dataset(seed, pristine, tmp_path, capsys):
    rng = np.random.default_rng(300 + seed)
    root = _copy(pristine, "folder", tmp_path)
    file = sorted(root.rglob("*.png"))[int(rng.integers(len(list(root.rglob("*.png")))))]
    data = file.read_bytes()
    if rng.random() < 0.5:  # cut before the end of the last pixel-data chunk
        end = data.rindex(b"IEND") - 8
        file.write_bytes(data[: int(rng.integers(1, end))])
    else:  # flip in the signature or the IHDR chunk, which its CRC guards
        damaged = bytearray(data)
        damaged[int(rng.integers(0, 33))] ^= 1 << int(rng.integers(8))
        file.write_bytes(bytes(damaged))
    refused(tmp_path, capsys, "folder", root, rf"cannot read image file {re.escape(str(file))}")

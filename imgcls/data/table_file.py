"""Reading a label table: a CSV or TSV file with a header row, one row per image.

Only the csv module: ``.csv`` is comma-separated, ``.tsv`` tab-separated, anything else
(``.txt``) has its delimiter sniffed. The text must be UTF-8 (a byte-order mark is dropped).
Every problem is one :class:`~imgcls.base.errors.UserError` line naming the table and, where
there is one, the line of the file.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from imgcls.base.errors import UserError, did_you_mean

DELIMITERS = {".csv": ",", ".tsv": "\t"}
SNIFFED = ",\t;|"


@dataclass
class Table:
    """The header and the data rows of a label table, with each row's line in the file."""

    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    def column(self, key: str, name: str) -> list[str]:
        """The stripped cells of column ``name`` (option ``dataset.<key>``); a name that is not
        in the header is one line with the closest column and every column."""
        if name not in self.header:
            raise UserError(
                f"dataset.{key}={name} is not a column of {self.path}"
                f"{did_you_mean(name, self.header) or ';'} columns: {', '.join(self.header)}"
            )
        at = self.header.index(name)
        return [row[at].strip() if at < len(row) else "" for row in self.rows]


def _delimiter(path: Path, text: str) -> str:
    if path.suffix.lower() in DELIMITERS:
        return DELIMITERS[path.suffix.lower()]
    try:
        return csv.Sniffer().sniff(text[:65536], delimiters=SNIFFED).delimiter
    except csv.Error:
        if "\n" not in text.strip() and text.strip():  # one column, one row: no delimiter seen
            return ","
        raise UserError(
            f"cannot tell how the columns of {path} are separated: name it .csv (commas) or "
            ".tsv (tabs)"
        ) from None


def read_table(path: Path) -> Table:
    """The rows of the label table at ``path`` (blank lines skipped)."""
    if not path.is_file():
        what = "a folder" if path.is_dir() else "not found"
        raise UserError(f"dataset.path={path}: the label table is {what} (a .csv or .tsv file)")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read the label table {path}: {error.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(
            f"cannot read the label table {path}: byte {error.start} is not UTF-8 text "
            "(save the table as UTF-8 CSV or TSV)"
        ) from None
    if "\x00" in text:
        raise UserError(f"cannot read the label table {path}: it holds NUL bytes, not text")
    reader = csv.reader(text.splitlines(), delimiter=_delimiter(path, text), strict=True)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append(row)
                lines.append(reader.line_num)
    except csv.Error as error:
        raise UserError(
            f"cannot read the label table {path}, line {reader.line_num}: {error}"
        ) from None
    if not rows:
        raise UserError(
            f"the label table {path} is empty: expected a header row and a row per image"
        )
    header = [cell.strip() for cell in rows[0]]
    if len(rows) == 1:
        raise UserError(
            f"the label table {path} has a header ({', '.join(header)}) but no rows of images"
        )
    return Table(path, header, rows[1:], lines[1:])

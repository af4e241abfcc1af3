"""Unpack UCR/UEA archive downloads into the ``Data/<Name>/<Name>_TRAIN.<ext>`` layout.

Accepts the official downloads (``UCRArchive_2018.zip``, which is password protected: pass
``--password``; ``Univariate2018_ts.zip``; ``Multivariate2018_ts.zip``; the ``_arff`` zips; the UCR
2015 zip) or a folder where one was already unpacked. Every ``<Name>_TRAIN`` / ``<Name>_TEST``
file (``.tsv``, ``.ts``, ``.arff``, ``.csv``, ``.txt`` or no extension) is copied unchanged to
``OUT/<Name>/``; :func:`utils.data.load_dataset` reads all of these formats, so nothing is
converted (the original script rewrote the UCR ``.tsv`` files as comma files with NaN -> 0, which
loses the difference between padding and missing values). Per-dimension ``.arff`` files
(``<Name>Dimension1_TRAIN.arff``) are skipped: the multivariate file holds the same data.

Safe to re-run: the input is only read; files already present with the same bytes are skipped;
a different existing file is an error unless ``--overwrite``; nothing is written until every
member has been read and checked (files go to temporary names in their folder, then
``os.replace``), so a failure leaves ``OUT`` as it was.

Usage (from the repository root)::

    python utils/extract_all_datasets.py UCRArchive_2018.zip --password PASSWORD
    python utils/extract_all_datasets.py Multivariate2018_ts.zip --datasets BasicMotions
    python -m utils.extract_all_datasets ~/Downloads/UCRArchive_2018 --out Data
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.cli import run_main  # noqa: E402
from utils.constants import UCR_ARCHIVE_URL, find_dataset  # noqa: E402
from utils.errors import DatasetError, DatasetNotFoundError  # noqa: E402

_MEMBER_PATTERN = re.compile(
    r"(?:^|/)(?P<name>[A-Za-z0-9][A-Za-z0-9_\-]*?)_(?P<split>TRAIN|TEST)"
    r"(?P<extension>\.tsv|\.ts|\.arff|\.csv|\.txt)?$"
)
_PER_DIMENSION = re.compile(r"Dimension\d+$")
# UCRArchive_2018.zip also holds edited copies (NaN filled, series equalised) of the datasets
# with missing values or unequal lengths, under the same file names. The originals are the
# archive's reference versions (and what the loader expects: it handles NaN and lengths itself).
_ADJUSTED_COPIES = "Missing_value_and_variable_length_datasets_adjusted"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveMember:
    """A dataset file inside the archive: where it is and where it goes."""

    source: str  # path inside the archive (posix), for reading and for messages
    name: str
    split: str
    extension: str

    @property
    def target(self) -> Path:
        return Path(self.name) / f"{self.name}_{self.split}{self.extension}"


def parse_member(source: str) -> ArchiveMember | None:
    """The member a path inside an archive stands for, or None when it is not a split file."""
    parts = source.split("/")
    if "__MACOSX" in parts or _ADJUSTED_COPIES in parts or parts[-1].startswith("."):
        return None
    match = _MEMBER_PATTERN.search(source)
    if match is None:
        return None
    name = match["name"]
    parent = parts[-2] if len(parts) > 1 else ""
    if _PER_DIMENSION.search(name) and parent != name:
        return None
    return ArchiveMember(source, name, match["split"], match["extension"] or "")


class ArchiveReader:
    """Read-only access to the split files of a zip archive or of a folder."""

    def __init__(self, archive: Path, password: str | None = None) -> None:
        self.archive = archive
        self.password = password.encode() if password is not None else None
        self._zip: zipfile.ZipFile | None = None
        if archive.is_dir():
            return
        if not archive.is_file():
            raise DatasetNotFoundError(f"{archive}: no such archive file or folder")
        try:
            self._zip = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, OSError) as error:
            raise DatasetError(
                f"{archive}: not a readable zip archive ({error}); pass a .zip or a folder"
            ) from error

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._zip is not None:
            self._zip.close()

    def members(self) -> list[ArchiveMember]:
        if self._zip is not None:
            sources = [info.filename for info in self._zip.infolist() if not info.is_dir()]
        else:
            sources = sorted(
                path.relative_to(self.archive).as_posix()
                for path in self.archive.rglob("*")
                if path.is_file()
            )
        return [member for member in map(parse_member, sources) if member is not None]

    def chunks(self, member: ArchiveMember) -> Iterator[bytes]:
        """The member's bytes, in chunks; zip password problems become DatasetError."""
        where = f"{self.archive}: {member.source}"
        try:
            if self._zip is None:
                with open(self.archive / member.source, "rb") as handle:
                    yield from _read_chunks(handle)
                return
            with self._zip.open(member.source, pwd=self.password) as handle:
                yield from _read_chunks(handle)
        except RuntimeError as error:  # zipfile's password errors
            text = str(error)
            if "password required" in text:
                raise DatasetError(
                    f"{where} is encrypted: pass --password (the UCR archive's password is given "
                    f"on its download page, {UCR_ARCHIVE_URL})"
                ) from error
            if "Bad password" in text:
                raise DatasetError(f"{where}: wrong password (--password)") from error
            raise DatasetError(f"{where}: cannot read ({error})") from error
        except NotImplementedError as error:
            raise DatasetError(
                f"{where}: compression or encryption that Python's zipfile cannot read ({error}); "
                f"unpack the archive with another tool and pass the folder"
            ) from error
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            hint = " or the password is wrong" if self.password else ""
            raise DatasetError(f"{where}: corrupt data ({error}){hint}") from error


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(_CHUNK):
        yield chunk


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in _read_chunks(handle):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ExtractReport:
    """What :func:`extract_archive` did."""

    written: list[Path] = field(default_factory=list)
    identical: list[Path] = field(default_factory=list)
    datasets: set[str] = field(default_factory=set)
    incomplete: list[str] = field(default_factory=list)  # datasets lacking TRAIN or TEST

    def summary(self, out: Path) -> str:
        text = (
            f"{len(self.datasets)} dataset(s) in {out}: {len(self.written)} file(s) written, "
            f"{len(self.identical)} already there and identical"
        )
        if self.incomplete:
            text += f"; missing a TRAIN or TEST file: {', '.join(sorted(self.incomplete))}"
        return text


@dataclass
class _Staged:
    member: ArchiveMember
    temporary: Path
    digest: str


def _wanted(member: ArchiveMember, datasets: Sequence[str] | None) -> bool:
    if not datasets:
        return True
    def canonical(name: str) -> str:  # registry name for names and aliases, else as given
        record = find_dataset(name)
        return (record.name if record else name).lower()

    return canonical(member.name) in {canonical(name) for name in datasets}


def extract_archive(
    archive: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    password: str | None = None,
    datasets: Sequence[str] | None = None,
    overwrite: bool = False,
) -> ExtractReport:
    """Copy every split file of ``archive`` (zip or folder) to ``out/<Name>/``, all or nothing.

    Parameters
    ----------
    archive : path
        A zip file or a folder; never modified.
    out : path
        The data folder to fill (created if needed).
    password : str, optional
        Password of an encrypted zip (ZipCrypto; the UCR 2018 archive).
    datasets : sequence of str, optional
        Only these datasets (names or registry aliases); default: all.
    overwrite : bool, default False
        Replace existing files whose bytes differ; without it such a file is an error.

    Raises
    ------
    DatasetNotFoundError
        ``archive`` does not exist.
    DatasetError
        Unreadable archive, wrong or missing password, no split files, or existing files that
        differ (without ``overwrite``). ``out`` is then left as it was.
    """
    archive, out = Path(archive).expanduser(), Path(out).expanduser()
    report = ExtractReport()
    staged: dict[Path, _Staged] = {}
    temporaries: list[Path] = []  # removed at the end whatever happens
    created_folders: list[Path] = []
    try:
        with ArchiveReader(archive, password) as reader:
            members = [m for m in reader.members() if _wanted(m, datasets)]
            if not members:
                wanted = f" for {', '.join(datasets)}" if datasets else ""
                raise DatasetError(
                    f"{archive}: no <Name>_TRAIN / <Name>_TEST files{wanted} "
                    f"(.tsv, .ts, .arff, .csv, .txt or no extension) found"
                )
            conflicts: list[str] = []
            for member in members:
                target = out / member.target
                if not target.parent.is_dir():
                    for folder in reversed([target.parent, *target.parent.parents]):
                        if not folder.exists():
                            folder.mkdir()
                            created_folders.append(folder)
                digest = hashlib.sha256()
                handle = tempfile.NamedTemporaryFile(
                    dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False
                )
                temporaries.append(Path(handle.name))
                with handle:
                    for chunk in reader.chunks(member):
                        digest.update(chunk)
                        handle.write(chunk)
                entry = _Staged(member, Path(handle.name), digest.hexdigest())
                earlier = staged.get(target)
                if earlier is not None:
                    if earlier.digest != entry.digest:
                        raise DatasetError(
                            f"{archive}: {earlier.member.source} and {member.source} both give "
                            f"{target} with different contents"
                        )
                    continue
                staged[target] = entry
                if target.exists() and _file_digest(target) != entry.digest and not overwrite:
                    conflicts.append(str(target))
            if conflicts:
                raise DatasetError(
                    f"{len(conflicts)} existing file(s) differ from the archive's, e.g. "
                    f"{', '.join(conflicts[:3])}: nothing was written; pass --overwrite to "
                    f"replace them"
                )
        for target, entry in staged.items():
            if target.exists() and _file_digest(target) == entry.digest:
                report.identical.append(target)
            else:
                os.replace(entry.temporary, target)
                report.written.append(target)
            report.datasets.add(entry.member.name)
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
        for folder in reversed(created_folders):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    splits: dict[str, set[str]] = {}
    for entry in staged.values():
        splits.setdefault(entry.member.name, set()).add(entry.member.split)
    report.incomplete = [name for name, found in splits.items() if found != {"TRAIN", "TEST"}]
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``extract_all_datasets.py ARCHIVE [--out DIR] [--password PW] ...``."""
    parser = argparse.ArgumentParser(
        description="Copy the split files of UCR/UEA archive zips or folders into the Data/ "
        "layout (<Name>/<Name>_TRAIN.<ext>), unchanged."
    )
    parser.add_argument("archives", nargs="+", metavar="ARCHIVE", help="zip file or folder")
    parser.add_argument(
        "--out", type=Path, default=None,
        help="data folder to fill (default: $LSTMFCN_DATA_DIR or the repository's Data/)",
    )
    parser.add_argument("--password", default=None, help="password of an encrypted zip")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                        help="only these datasets (default: all)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing files whose contents differ")
    args = parser.parse_args(argv)
    if args.out is None:
        from utils.data import default_data_dir  # pandas and scikit-learn: only when needed

        args.out = default_data_dir()
    out = args.out
    for archive in args.archives:
        report = extract_archive(
            archive, out, password=args.password, datasets=args.datasets,
            overwrite=args.overwrite,
        )
        print(f"{archive}: {report.summary(out)}")
    return 0


if __name__ == "__main__":
    run_main(main)

"""Safe intake of an uploaded file: size, type by content (never by name alone) and archive checks, all before any
parser sees a byte. `check_upload` either returns an `Upload` ready for the worker or raises a `FileRefused`."""

from __future__ import annotations

import io
import os
import struct
import zipfile
from dataclasses import dataclass

from .errors import (
    CorruptFile,
    EmptyFile,
    FileTooLarge,
    NotASpreadsheet,
    OldExcelFormat,
    PasswordProtected,
    TypeMismatch,
    WebPage,
    ZipBomb,
)
from .formats import DESCRIPTIONS, EXTENSION_FORMATS, FileFormat
from .limits import MB, Limits

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_BINARY_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "an image"),
    (b"\xff\xd8\xff", "an image"),
    (b"GIF8", "an image"),
    (b"\x1f\x8b", "a compressed .gz file"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
)


@dataclass(frozen=True)
class Upload:
    """A file that passed intake: its bytes, its name as sent, and its format as found in its content."""

    data: bytes
    filename: str
    file_format: FileFormat


def check_upload(data: bytes, filename: str, limits: Limits | None = None) -> Upload:
    """Check an untrusted upload before parsing: size, type by content, archive entries and expansion ratio.

    Raises a `FileRefused` subclass with one sentence for staff naming the fix; returns the `Upload` otherwise.
    """
    limits = limits or Limits()
    name = os.path.basename(filename or "") or "the file"
    if len(data) > limits.max_bytes:
        raise FileTooLarge(
            f"'{name}' is {_megabytes(len(data))}, more than the {_megabytes(limits.max_bytes)} the portal reads: "
            "split the rows over several smaller files and send each one.")
    if not data.strip():
        raise EmptyFile(f"'{name}' is empty: send the file that holds the rows.")

    extension = os.path.splitext(filename or "")[1].lower()
    if data.startswith(OLE2_MAGIC):
        _refuse_ole2(data, name)
    if data.startswith(ZIP_MAGICS):
        found = _classify_zip(data, name, limits)
    elif _looks_like_html(data):
        raise WebPage(
            "This is a web page, not a spreadsheet: the bot probably lacks the files:read scope (Slack sent its "
            f"login page instead of '{name}'); ask your Slack admin to add that scope, then drop the file again.")
    else:
        _refuse_binary(data, name)
        found = FileFormat.CSV

    if extension in EXTENSION_FORMATS and EXTENSION_FORMATS[extension] is not found:
        promised = EXTENSION_FORMATS[extension]
        raise TypeMismatch(
            f"'{name}' is named {extension} but holds {DESCRIPTIONS[found]}, not {DESCRIPTIONS[promised]}: open it "
            "in Excel and save it again as Excel Workbook (.xlsx) or CSV, then send that file.")
    return Upload(data=data, filename=filename, file_format=found)


def _megabytes(size: int) -> str:
    return f"{size / MB:.1f} MB"


# Archives ----------------------------------------------------------------------------------------------------------
def _classify_zip(data: bytes, name: str, limits: Limits) -> FileFormat:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError, struct.error) as exc:
        raise CorruptFile(
            f"'{name}' is damaged (its zip structure cannot be read: {exc}): open it in Excel, save a fresh copy "
            "(Save As .xlsx), and send that copy.") from None
    check_archive(infos, name, limits)
    names = {info.filename for info in infos}
    if "[Content_Types].xml" in names and "xl/workbook.xml" in names:
        return FileFormat.XLSX
    if find_bundle_file(names, "users.csv") is not None:
        return FileFormat.ONEROSTER
    if "xl/workbook.bin" in names:
        raise NotASpreadsheet(
            f"'{name}' is an Excel binary workbook (.xlsb), which the portal does not read: open it in Excel, save "
            "it as Excel Workbook (.xlsx), and send that file.")
    if "word/document.xml" in names or "ppt/presentation.xml" in names:
        raise NotASpreadsheet(
            f"'{name}' is a Word or PowerPoint document, not a spreadsheet: send an Excel workbook (.xlsx), a CSV "
            "file or a OneRoster .zip bundle.")
    raise NotASpreadsheet(
        f"'{name}' is a zip archive that is neither an Excel workbook nor a OneRoster bundle (no users.csv inside): "
        "send an Excel workbook (.xlsx), a CSV file, or the OneRoster export as exported.")


def check_archive(infos: list[zipfile.ZipInfo], name: str, limits: Limits) -> None:
    """Refuse a zip bomb from its central directory alone: entry count, total declared size, per-entry ratio."""
    if len(infos) > limits.max_zip_entries:
        raise ZipBomb(
            f"'{name}' packs {len(infos):,} parts, far more than a spreadsheet holds (at most "
            f"{limits.max_zip_entries:,}): send the original spreadsheet exported from Excel or your student "
            "information system.")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise PasswordProtected(
                f"'{name}' is protected with a password: save or export it again without a password, and send "
                "that file.")
        total += info.file_size
        expanded, packed = info.file_size, info.compress_size
        if expanded >= limits.ratio_check_min_bytes and (
                packed <= 0 or expanded / packed > limits.max_compression_ratio):
            raise ZipBomb(
                f"'{name}' would expand its part {info.filename} from {packed:,} to {expanded:,} bytes, far more "
                "than a real spreadsheet (a 'zip bomb'): send the original spreadsheet exported from Excel or your "
                "student information system.")
    if total > limits.max_uncompressed_bytes:
        raise ZipBomb(
            f"'{name}' would expand to {_megabytes(total)}, more than the {_megabytes(limits.max_uncompressed_bytes)} "
            "a spreadsheet the portal reads may hold (a 'zip bomb'?): send the original spreadsheet, or split it.")


def find_bundle_file(names: set[str] | list[str], wanted: str) -> str | None:
    """The archive path of a OneRoster file (`users.csv`), at the root or in one folder; the shallowest wins."""
    matches = [n for n in names if n.rsplit("/", 1)[-1].lower() == wanted and n.count("/") <= 1
               and not n.startswith("__MACOSX/")]
    return min(matches, key=lambda n: (n.count("/"), n)) if matches else None


# Old Office files (OLE2 / Compound File Binary) --------------------------------------------------------------------
def _refuse_ole2(data: bytes, name: str) -> None:
    streams = cfb_stream_names(data)
    encrypted = {"EncryptedPackage", "EncryptionInfo"} & set(streams) or (
        not streams and "EncryptedPackage".encode("utf-16-le") in data)
    if encrypted:
        raise PasswordProtected(
            f"'{name}' is protected with a password, so it cannot be read: in Excel choose File > Info > Protect "
            "Workbook > Encrypt with Password, clear the password, save, and send the file again.")
    if "WordDocument" in streams or "PowerPoint Document" in streams:
        raise NotASpreadsheet(
            f"'{name}' is an old Word or PowerPoint document, not a spreadsheet: send an Excel workbook (.xlsx) or "
            "a CSV file.")
    raise OldExcelFormat(
        f"'{name}' is in the old Excel 97-2003 format (.xls), which the portal does not read: open it in Excel, "
        "save it as Excel Workbook (.xlsx), and send that file.")


def cfb_stream_names(data: bytes, max_sectors: int = 4096) -> list[str]:
    """Names in the directory of a Compound File Binary (OLE2) file; [] when the structure cannot be followed."""
    try:
        shift = struct.unpack_from("<H", data, 30)[0]
        if shift not in (9, 12):
            return []
        size = 1 << shift
        fat_count, first_dir = struct.unpack_from("<II", data, 44)
        difat = struct.unpack_from("<109I", data, 76)[: min(fat_count, 109)]
        fat: list[int] = []
        for sector in difat:
            start = (sector + 1) * size
            if sector >= 0xFFFFFFFA or start + size > len(data):
                break
            fat.extend(struct.unpack_from(f"<{size // 4}I", data, start))
        names: list[str] = []
        sector, seen = first_dir, set()
        while sector < 0xFFFFFFFA and sector not in seen and len(seen) < max_sectors:
            seen.add(sector)
            start = (sector + 1) * size
            if start + size > len(data):
                break
            for offset in range(start, start + size, 128):
                length = struct.unpack_from("<H", data, offset + 64)[0]
                if 2 <= length <= 64:
                    names.append(data[offset:offset + length - 2].decode("utf-16-le", "replace"))
            sector = fat[sector] if sector < len(fat) else 0xFFFFFFFE
        return names
    except struct.error:
        return []


# Text and other binaries -------------------------------------------------------------------------------------------
def _looks_like_html(data: bytes) -> bool:
    head = data[:4096]
    for bom in _BOMS:
        if head.startswith(bom):
            head = head[len(bom):]
            break
    head = head.replace(b"\x00", b"").lstrip().lower()
    if not head.startswith(b"<"):
        return False
    return any(marker in head for marker in (b"<!doctype html", b"<html", b"<head", b"<body", b"<meta", b"<title"))


def _refuse_binary(data: bytes, name: str) -> None:
    for magic, what in _BINARY_MAGICS:
        if data.startswith(magic):
            raise NotASpreadsheet(
                f"'{name}' is {what}, not a spreadsheet: send an Excel workbook (.xlsx), a CSV file or a OneRoster "
                ".zip bundle.")
    head = data[:8192]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return  # UTF-16 text, as Excel's "Unicode text" writes it
    if b"\x00" in head:
        raise NotASpreadsheet(
            f"'{name}' is not a spreadsheet the portal reads (it holds binary data): send an Excel workbook "
            "(.xlsx), a CSV file or a OneRoster .zip bundle.")

"""The formats the portal reads, decided by a file's content, and the names staff know them by."""

from __future__ import annotations

from enum import StrEnum


class FileFormat(StrEnum):
    """What a file is inside, whatever its name says."""

    XLSX = "xlsx"  # an Excel workbook, .xlsx or .xlsm (macros are never run nor read)
    CSV = "csv"  # text: UTF-8 with or without BOM, UTF-16 or Windows-1252; comma, semicolon or tab
    ONEROSTER = "oneroster"  # a OneRoster 1.1 CSV bundle: a .zip holding users.csv


# What each extension promises. Extensions not listed promise nothing, and the content alone decides.
EXTENSION_FORMATS: dict[str, FileFormat | None] = {
    ".xlsx": FileFormat.XLSX,
    ".xlsm": FileFormat.XLSX,
    ".csv": FileFormat.CSV,
    ".txt": FileFormat.CSV,
    ".tsv": FileFormat.CSV,
    ".zip": FileFormat.ONEROSTER,
    ".xls": None,  # the old binary format: never read, refused with its own message
}

DESCRIPTIONS: dict[FileFormat | None, str] = {
    FileFormat.XLSX: "an Excel workbook",
    FileFormat.CSV: "CSV text",
    FileFormat.ONEROSTER: "a OneRoster .zip bundle",
    None: "an Excel 97-2003 workbook",
}

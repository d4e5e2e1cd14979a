"""Real test files built in memory: workbooks (openpyxl), CSV in several encodings, OneRoster bundles, and the bad
files an upload must refuse (zip bombs, password-protected and old Excel files, web pages, corrupt archives).

Every helper returns bytes, ready for `read_upload(data, filename)`.
"""

from __future__ import annotations

import csv
import io
import re
import struct
import zipfile
from collections.abc import Sequence
from xml.sax.saxutils import escape

from openpyxl import Workbook, load_workbook

Rows = Sequence[Sequence[object]]

PARENT_HEADER = ["LOGONID", "FIRST_NAME", "LAST_NAME", "EMAIL", "PASSWORD", "USER_TYPE", "STUDENT_IDS",
                 "MUST_CHANGE_PASSWORD"]
LINKS_HEADER = ["LOGONID", "STUDENT_ID"]
STAFF_HEADER = ["STAFF_ID", "LOGONID", "FIRST_NAME", "LAST_NAME", "EMAIL", "SCHOOL"]
ROSTER_HEADER = ["STUDENT_ID", "STUDENT_FIRST_NAME", "STUDENT_LAST_NAME", "GRAD_YEAR", "GROUP", "SCHOOL",
                 "CONTACT_ID", "CONTACT_FIRST_NAME", "CONTACT_LAST_NAME", "CONTACT_EMAIL", "RELATIONSHIP",
                 "PARENTAL_RESPONSIBILITY", "PRIMARY_CONTACT", "CONTACT_PHONE"]


def xlsx_bytes(rows: Rows, *, sheet: str = "Sheet1", before: Sequence[tuple[str, Rows]] = (),
               after: Sequence[tuple[str, Rows]] = (), hidden: Sequence[str] = ()) -> bytes:
    """A workbook whose sheet `sheet` holds `rows` (row 1 first), with other sheets before and after it.
    Values keep their Python types: 1234.0 is a number cell, "001234" a text cell, "=A1" a formula."""
    book = Workbook()
    book.remove(book.active)
    for name, content in (*before, (sheet, rows), *after):
        target = book.create_sheet(name)
        for row in content:
            target.append(list(row))
        if name in hidden:
            target.sheet_state = "hidden"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_bytes(rows: Rows, *, encoding: str = "utf-8", delimiter: str = ",", bom: bool = False) -> bytes:
    """CSV text of `rows` in `encoding` ("utf-8", "cp1252", "utf-16"), with a UTF-8 BOM when `bom`."""
    text = io.StringIO(newline="")
    csv.writer(text, delimiter=delimiter).writerows([["" if v is None else str(v) for v in row] for row in rows])
    data = text.getvalue().encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


def with_cached_formula(workbook: bytes, cell: str, formula: str, cached: str, *, text: bool = False,
                        part: str = "xl/worksheets/sheet1.xml") -> bytes:
    """The workbook with `cell` turned into a formula carrying a cached value, as Excel saves it (openpyxl cannot
    compute formulas, so the sheet XML is edited). The cell must already hold a value."""
    source = zipfile.ZipFile(io.BytesIO(workbook))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == part:
                xml = data.decode("utf-8")
                kind = ' t="str"' if text else ""
                replacement = f'<c r="{cell}"{kind}><f>{escape(formula)}</f><v>{escape(cached)}</v></c>'
                xml, count = re.subn(rf'<c r="{cell}"[^>]*?(?:/>|>.*?</c>)', replacement, xml, count=1)
                assert count == 1, f"cell {cell} not found in {part}"
                data = xml.encode("utf-8")
            target.writestr(info, data)
    return out.getvalue()


def oneroster_zip(users: Rows, *, orgs: Rows | None = None, classes: Rows | None = None,
                  enrollments: Rows | None = None, folder: str = "") -> bytes:
    """A OneRoster 1.1 CSV bundle; each table's first row is its header."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(f"{folder}manifest.csv", "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\n")
        for name, rows in (("users.csv", users), ("orgs.csv", orgs), ("classes.csv", classes),
                           ("enrollments.csv", enrollments)):
            if rows is not None:
                bundle.writestr(f"{folder}{name}", csv_bytes(rows))
    return out.getvalue()


def zip_bomb(expanded_bytes: int = 20 * 1024 * 1024) -> bytes:
    """A zip that looks like a workbook but whose sheet expands ~1000 times (zeros compress extremely well)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("[Content_Types].xml", "<Types/>")
        bomb.writestr("xl/workbook.xml", "<workbook/>")
        bomb.writestr("xl/worksheets/sheet1.xml", b"0" * expanded_bytes)
    return out.getvalue()


def zip_with_entries(count: int) -> bytes:
    """A zip archive of `count` tiny entries."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as many:
        for index in range(count):
            many.writestr(f"part{index}.xml", "<x/>")
    return out.getvalue()


def docx_like() -> bytes:
    """A zip shaped like a Word document."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as doc:
        doc.writestr("[Content_Types].xml", "<Types/>")
        doc.writestr("word/document.xml", "<document/>")
    return out.getvalue()


def corrupt_workbook(workbook: bytes) -> bytes:
    """A workbook cut in half, as a broken download leaves it."""
    return workbook[: len(workbook) // 2]


def damaged_sheet(workbook: bytes) -> bytes:
    """A workbook whose zip structure is intact but whose sheet XML is not XML."""
    source = zipfile.ZipFile(io.BytesIO(workbook))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2] + b"<<<not xml"
            target.writestr(info, data)
    return out.getvalue()


def cfb_bytes(stream_names: Sequence[str]) -> bytes:
    """A valid Compound File Binary (OLE2) file holding empty streams with these names, as Excel 97-2003 files
    (a "Workbook" stream) and password-protected .xlsx files ("EncryptionInfo" and "EncryptedPackage") are."""
    sector = 512
    free, end_of_chain, fat_sector, no_stream = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
    names = ["Root Entry", *stream_names]
    dir_sectors = -(-len(names) // 4)
    fat = [fat_sector] + [i + 2 if i + 1 < dir_sectors else end_of_chain for i in range(dir_sectors)]
    fat += [free] * (sector // 4 - len(fat))

    def entry(index: int) -> bytes:
        if index >= len(names):
            return b"\x00" * 64 + struct.pack("<HBBIII", 0, 0, 0, no_stream, no_stream, no_stream) + b"\x00" * 52
        encoded = names[index].encode("utf-16-le") + b"\x00\x00"
        kind = 5 if index == 0 else 2
        right = index + 1 if 0 < index < len(names) - 1 else no_stream
        child = 1 if index == 0 and len(names) > 1 else no_stream
        return (encoded.ljust(64, b"\x00") + struct.pack("<HBBIII", len(encoded), kind, 1, no_stream, right, child)
                + b"\x00" * 16 + b"\x00" * 4 + b"\x00" * 16 + struct.pack("<IQ", end_of_chain, 0))

    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16
              + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\x00" * 6
              + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 4096, end_of_chain, 0, end_of_chain, 0)
              + struct.pack("<109I", 0, *([free] * 108)))
    assert len(header) == sector
    directory = b"".join(entry(i) for i in range(dir_sectors * 4))
    return header + struct.pack(f"<{sector // 4}I", *fat) + directory


def encrypted_xlsx() -> bytes:
    """What Excel writes for a workbook with "Encrypt with Password": an OLE2 file with an EncryptedPackage."""
    return cfb_bytes(["\x06DataSpaces", "DataSpaceMap", "DataSpaceInfo", "StrongEncryptionDataSpace",
                      "EncryptionInfo", "EncryptedPackage"])


def legacy_xls() -> bytes:
    """An Excel 97-2003 workbook's container (a "Workbook" stream)."""
    return cfb_bytes(["Workbook", "\x05SummaryInformation", "\x05DocumentSummaryInformation"])


def slack_login_page() -> bytes:
    """The HTML page Slack serves instead of a file when the bot lacks the files:read scope."""
    return (b"<!DOCTYPE html>\n<html lang=\"en-US\"><head><meta charset=\"utf-8\"><title>Slack</title></head>"
            b"<body><div>Sign in to your workspace</div></body></html>\n")


def dimension_bomb() -> bytes:
    """A tiny valid workbook with a header and one value in the very last cell (XFD1048576): a reader that builds
    the sheet as a dense grid asks for hundreds of gigabytes."""
    book = Workbook()
    sheet = book.active
    sheet.append(["LOGONID", "STUDENT_ID"])
    sheet.append(["parent01", "1001"])
    sheet["XFD1048576"] = "x"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def read_back(workbook: bytes, sheet: str | None = None) -> list[list[object]]:
    """The values of a sheet (the first by default) as openpyxl reads them."""
    book = load_workbook(io.BytesIO(workbook))
    target = book[sheet] if sheet else book.worksheets[0]
    return [list(row) for row in target.iter_rows(values_only=True)]

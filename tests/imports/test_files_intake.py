"""Safe intake: every bad file gets its own clear refusal, and nothing of it reaches a parser (no worker starts)."""

from __future__ import annotations

import pytest

from plumbing import status_codes
from services.imports.files import errors
from services.imports.files.formats import FileFormat
from services.imports.files.intake import check_upload
from services.imports.files.limits import Limits
from services.imports.files.reader import read_upload
from tests.support.workbooks import (
    PARENT_HEADER,
    cfb_bytes,
    corrupt_workbook,
    csv_bytes,
    docx_like,
    encrypted_xlsx,
    legacy_xls,
    oneroster_zip,
    slack_login_page,
    xlsx_bytes,
    zip_bomb,
    zip_with_entries,
)

PARENT_ROW = ["jsmith01", "Jo", "Smith", "jo@example.org", "", "", "1001", ""]


def refused(data: bytes, filename: str, limits: Limits | None = None) -> errors.FileRefused:
    """The refusal of a file read end to end, checking that no worker process was started for it."""
    started: list[int] = []
    with pytest.raises(errors.FileRefused) as caught:
        read_upload(data, filename, limits, on_worker_start=started.append)
    assert started == [], "a refused file must not reach the parser"
    assert caught.value.code in {c.code for c in status_codes.catalogue()}
    return caught.value


def test_content_decides_the_format() -> None:
    assert check_upload(xlsx_bytes([PARENT_HEADER]), "parents.xlsx").file_format is FileFormat.XLSX
    assert check_upload(xlsx_bytes([PARENT_HEADER]), "parents.xlsm").file_format is FileFormat.XLSX
    assert check_upload(xlsx_bytes([PARENT_HEADER]), "from-slack").file_format is FileFormat.XLSX
    assert check_upload(csv_bytes([PARENT_HEADER]), "parents.csv").file_format is FileFormat.CSV
    assert check_upload(csv_bytes([PARENT_HEADER]), "parents").file_format is FileFormat.CSV
    assert check_upload(csv_bytes([PARENT_HEADER], encoding="utf-16"), "p.txt").file_format is FileFormat.CSV
    bundle = oneroster_zip([["sourcedId", "role"]])
    assert check_upload(bundle, "export.zip").file_format is FileFormat.ONEROSTER


def test_too_large() -> None:
    error = refused(csv_bytes([PARENT_HEADER, PARENT_ROW] * 50), "big.csv", Limits(max_bytes=1000))
    assert isinstance(error, errors.FileTooLarge)
    assert "split the rows over several smaller files" in error.message


def test_empty_file() -> None:
    assert isinstance(refused(b"  \n", "empty.csv"), errors.EmptyFile)


def test_a_csv_named_xlsx_is_not_what_its_extension_says() -> None:
    error = refused(csv_bytes([PARENT_HEADER, PARENT_ROW]), "parents.xlsx")
    assert isinstance(error, errors.TypeMismatch)
    assert "named .xlsx but holds CSV text, not an Excel workbook" in error.message
    assert "save it again as Excel Workbook (.xlsx) or CSV" in error.message


def test_a_workbook_named_csv_is_not_what_its_extension_says() -> None:
    error = refused(xlsx_bytes([PARENT_HEADER, PARENT_ROW]), "parents.csv")
    assert isinstance(error, errors.TypeMismatch)
    assert "holds an Excel workbook, not CSV text" in error.message


def test_slack_login_page_instead_of_the_file() -> None:
    error = refused(slack_login_page(), "parents.xlsx")
    assert isinstance(error, errors.WebPage)
    assert error.code == "E_FILE_WEB_PAGE"
    assert error.message.startswith(
        "This is a web page, not a spreadsheet: the bot probably lacks the files:read scope")


def test_password_protected_workbook() -> None:
    error = refused(encrypted_xlsx(), "parents.xlsx")
    assert isinstance(error, errors.PasswordProtected)
    assert "protected with a password" in error.message and "clear the password" in error.message


def test_old_excel_format() -> None:
    error = refused(legacy_xls(), "parents.xls")
    assert isinstance(error, errors.OldExcelFormat)
    assert "save it as Excel Workbook (.xlsx)" in error.message


def test_old_word_document() -> None:
    assert isinstance(refused(cfb_bytes(["WordDocument"]), "letter.doc"), errors.NotASpreadsheet)


def test_zip_bomb_refused_from_its_directory() -> None:
    error = refused(zip_bomb(), "parents.xlsx")
    assert isinstance(error, errors.ZipBomb)
    assert "zip bomb" in error.message and "xl/worksheets/sheet1.xml" in error.message


def test_archive_with_too_many_entries() -> None:
    error = refused(zip_with_entries(60), "parents.zip", Limits(max_zip_entries=50))
    assert isinstance(error, errors.ZipBomb)
    assert "packs 60 parts" in error.message


def test_archive_declaring_too_much_in_total() -> None:
    workbook = xlsx_bytes([PARENT_HEADER] + [PARENT_ROW] * 200)
    error = refused(workbook, "parents.xlsx", Limits(max_uncompressed_bytes=10_000))
    assert isinstance(error, errors.ZipBomb)
    assert "would expand to" in error.message


def test_corrupt_zip() -> None:
    error = refused(corrupt_workbook(xlsx_bytes([PARENT_HEADER, PARENT_ROW])), "parents.xlsx")
    assert isinstance(error, errors.CorruptFile)
    assert "save a fresh copy" in error.message


def test_word_document_and_other_zips() -> None:
    assert "Word or PowerPoint" in refused(docx_like(), "parents.zip").message
    assert "neither an Excel workbook nor a OneRoster bundle" in refused(zip_with_entries(3), "x.zip").message


@pytest.mark.parametrize(("data", "what"), [
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "an image"),
    (b"\x00\x01\x02\x03binary\x00stuff", "binary data"),
])
def test_other_files_are_not_spreadsheets(data: bytes, what: str) -> None:
    error = refused(data, "upload")
    assert isinstance(error, errors.NotASpreadsheet)
    assert what in error.message


def test_each_refusal_has_its_own_code() -> None:
    classes = [errors.FileTooLarge, errors.TooManyRows, errors.TooManyColumns, errors.EmptyFile,
               errors.TypeMismatch, errors.NotASpreadsheet, errors.WebPage, errors.PasswordProtected,
               errors.OldExcelFormat, errors.ZipBomb, errors.CorruptFile, errors.UnreadableFile,
               errors.UnknownKind, errors.MissingColumns, errors.DuplicateColumn]
    codes = [cls.code for cls in classes]
    assert len(set(codes)) == len(codes)
    for cls in classes:
        assert errors.refusal_for_code(cls.code) is cls
        assert status_codes.lookup(cls.code).code == cls.code

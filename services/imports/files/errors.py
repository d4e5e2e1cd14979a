"""Refusals of a whole file: one exception class per status code, each carrying one sentence for staff that names
the fix. Nothing of a refused file is parsed further and no job is created for it."""

from __future__ import annotations

from typing import ClassVar

from plumbing import status_codes


class FileRefused(Exception):
    """Base of every whole-file refusal; `code` is a stable status code, `message` is shown to staff as it is."""

    code: ClassVar[str] = status_codes.E_FILE_CORRUPT.code

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[type[FileRefused], tuple[str]]:
        return (type(self), (self.message,))


class FileTooLarge(FileRefused):
    code = status_codes.E_FILE_TOO_LARGE.code


class TooManyRows(FileRefused):
    code = status_codes.E_FILE_TOO_MANY_ROWS.code


class TooManyColumns(FileRefused):
    code = status_codes.E_FILE_TOO_MANY_COLUMNS.code


class EmptyFile(FileRefused):
    code = status_codes.E_FILE_EMPTY.code


class TypeMismatch(FileRefused):
    code = status_codes.E_FILE_TYPE_MISMATCH.code


class NotASpreadsheet(FileRefused):
    code = status_codes.E_FILE_NOT_SPREADSHEET.code


class WebPage(FileRefused):
    code = status_codes.E_FILE_WEB_PAGE.code


class PasswordProtected(FileRefused):
    code = status_codes.E_FILE_PASSWORD.code


class OldExcelFormat(FileRefused):
    code = status_codes.E_FILE_OLD_FORMAT.code


class ZipBomb(FileRefused):
    code = status_codes.E_FILE_ZIP_BOMB.code


class CorruptFile(FileRefused):
    code = status_codes.E_FILE_CORRUPT.code


class UnreadableFile(FileRefused):
    """The worker process died, ran out of memory or time: the file cost one worker, never the service."""

    code = status_codes.E_FILE_UNREADABLE.code


class UnknownKind(FileRefused):
    code = status_codes.E_FILE_UNKNOWN_KIND.code


class MissingColumns(FileRefused):
    code = status_codes.E_FILE_MISSING_COLUMNS.code


class DuplicateColumn(FileRefused):
    code = status_codes.E_FILE_DUPLICATE_COLUMN.code


def refusal_for_code(code: str) -> type[FileRefused]:
    """The exception class of a refusal code (used to rebuild a refusal sent back by a worker process)."""
    for cls in _all_subclasses(FileRefused):
        if cls.code == code:
            return cls
    return FileRefused


def _all_subclasses(cls: type[FileRefused]) -> list[type[FileRefused]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found

"""The file layer of the imports service: reading untrusted spreadsheets safely and writing workbooks back.

No gRPC and no database here; the service and its jobs call these functions:

- `read_upload(data, filename, limits)` -> `ParsedFile` (or raises a `FileRefused` with one sentence for staff):
  intake checks (`intake`), parsing in a limited worker process (`worker`, `sheets`, `oneroster`), the kind by its
  headers (`kinds`), typed rows and the within-file checks (`rows`, `values`).
- `write_template(students)`, `write_annotated_workbook(parsed, outcomes)`, `write_upload_log(entries)` -> .xlsx
  bytes (`template`, `annotated`, `upload_log`), every text passing through `neutralise`.

A process that reads files must guard its main module with `if __name__ == "__main__":` (as multiprocessing
requires): the worker processes are started from a fork server that preloads it.
"""

from .annotated import PASSWORD_NOTE, write_annotated_workbook
from .errors import (
    CorruptFile,
    DuplicateColumn,
    EmptyFile,
    FileRefused,
    FileTooLarge,
    MissingColumns,
    NotASpreadsheet,
    OldExcelFormat,
    PasswordProtected,
    TooManyColumns,
    TooManyRows,
    TypeMismatch,
    UnknownKind,
    UnreadableFile,
    WebPage,
    ZipBomb,
)
from .formats import FileFormat
from .intake import Upload, check_upload
from .kinds import ColumnRef, Kind, kinds_help
from .limits import Limits
from .neutralise import neutralise
from .outcomes import Action, LogEntry, RowOutcome
from .problems import Problem
from .reader import read_upload, read_upload_async
from .rows import (
    ParentAccount,
    ParentAccountRow,
    ParsedFile,
    RosterRow,
    StaffRow,
    StudentLinkRow,
    merge_parent_accounts,
    parse_rows,
)
from .table import Table
from .template import TemplateContact, TemplateStudent, write_template
from .upload_log import write_upload_log
from .worker import parse_in_worker

__all__ = [
    "PASSWORD_NOTE",
    "Action",
    "ColumnRef",
    "CorruptFile",
    "DuplicateColumn",
    "EmptyFile",
    "FileFormat",
    "FileRefused",
    "FileTooLarge",
    "Kind",
    "Limits",
    "LogEntry",
    "MissingColumns",
    "NotASpreadsheet",
    "OldExcelFormat",
    "ParentAccount",
    "ParentAccountRow",
    "ParsedFile",
    "PasswordProtected",
    "Problem",
    "RosterRow",
    "RowOutcome",
    "StaffRow",
    "StudentLinkRow",
    "Table",
    "TemplateContact",
    "TemplateStudent",
    "TooManyColumns",
    "TooManyRows",
    "TypeMismatch",
    "UnknownKind",
    "UnreadableFile",
    "Upload",
    "WebPage",
    "ZipBomb",
    "check_upload",
    "kinds_help",
    "merge_parent_accounts",
    "neutralise",
    "parse_in_worker",
    "parse_rows",
    "read_upload",
    "read_upload_async",
    "write_annotated_workbook",
    "write_template",
    "write_upload_log",
]

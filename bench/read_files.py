"""How long reading a large upload takes through the portal's file layer, against python-calamine alone.

    python bench/read_files.py [--rows 100000] [--repeat 3] [--writers]

Prints, for the same generated parent-accounts file (bench/make_parent_file.py): calamine reading the sheet
directly in this process; intake plus parsing in the worker process (the table of text back in this process);
the whole `read_upload` (typed rows, duplicates merged); the same for CSV; and with --writers the time to write
the annotated trial-run workbook and an upload template of as many rows. Best of --repeat runs.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from python_calamine import CalamineWorkbook  # noqa: E402

from bench.make_parent_file import parent_file_bytes  # noqa: E402
from services.imports.files.annotated import write_annotated_workbook  # noqa: E402
from services.imports.files.intake import check_upload  # noqa: E402
from services.imports.files.outcomes import Action, RowOutcome  # noqa: E402
from services.imports.files.reader import read_upload  # noqa: E402
from services.imports.files.template import TemplateContact, TemplateStudent, write_template  # noqa: E402
from services.imports.files.worker import parse_in_worker  # noqa: E402


def best(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def cached_file(rows: int, file_format: str) -> bytes:
    path = ROOT / "var" / "bench" / f"parents_{rows}.{file_format}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(parent_file_bytes(rows, file_format))
    return path.read_bytes()


def calamine_direct(data: bytes) -> list[list[object]]:
    return CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0).to_python()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--writers", action="store_true", help="also time the workbooks written back")
    args = parser.parse_args(argv)

    xlsx, csv = cached_file(args.rows, "xlsx"), cached_file(args.rows, "csv")
    print(f"{args.rows:,}-row parent file: xlsx {len(xlsx) / 1e6:.1f} MB, csv {len(csv) / 1e6:.1f} MB, "
          f"{os.cpu_count()} CPUs")
    direct = best(args.repeat, lambda: calamine_direct(xlsx))
    worker = best(args.repeat, lambda: parse_in_worker(check_upload(xlsx, "parents.xlsx")))
    whole = best(args.repeat, lambda: read_upload(xlsx, "parents.xlsx"))
    csv_whole = best(args.repeat, lambda: read_upload(csv, "parents.csv"))
    print(f"calamine directly (load + to_python)        {direct:7.2f} s")
    print(f"intake + worker process (table of text)     {worker:7.2f} s   {worker / direct:4.2f}x calamine")
    print(f"read_upload xlsx (typed rows, merged)       {whole:7.2f} s   {whole / direct:4.2f}x calamine")
    print(f"read_upload csv                             {csv_whole:7.2f} s   {csv_whole / direct:4.2f}x calamine")

    if args.writers:
        parsed = read_upload(xlsx, "parents.xlsx")
        plan = [RowOutcome(row.row_number, Action.CREATE) for row in parsed.rows]
        annotated = best(1, lambda: write_annotated_workbook(parsed, plan))
        students = [TemplateStudent(str(100_000 + i), "Kid", "Smith", 2031, "7A", "Lincoln High", (
            TemplateContact("Jo", "Smith", f"jo{i}@example.org", parental_responsibility=True),))
            for i in range(args.rows)]
        template = best(1, lambda: write_template(students, selection="all"))
        print(f"annotated trial-run workbook, {len(plan):,} rows  {annotated:7.2f} s")
        print(f"upload template, {args.rows:,} students          {template:7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Generate a realistic parent-accounts file (the upload template filled in) for benchmarks and tests.

    python bench/make_parent_file.py --rows 100000 --format xlsx --out var/parents_100k.xlsx

Rows look like what staff send: usernames from email addresses, siblings on several rows under one username
(about one parent in six), some cells with two student ids, names with apostrophes, hyphens and accents (emails
and usernames in ASCII), about one row in ten with a password (the rest get invitations), USER_TYPE mostly left
empty, and the template's read-only student columns. Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

HEADER = ["LOGONID", "FIRST_NAME", "LAST_NAME", "EMAIL", "PASSWORD", "USER_TYPE", "STUDENT_IDS",
          "MUST_CHANGE_PASSWORD", "STUDENT_NAME", "GRAD_YEAR", "GROUP", "SCHOOL"]
FIRST_NAMES = ["Olivia", "Liam", "Amelia", "Noah", "Zoë", "José", "Aoife", "Mohammed", "Chloé", "Siobhán", "Wei",
               "Priya", "Jean-Luc", "Anna-Maria", "Kwame", "Fatima", "Lukas", "Sofía", "Mateo", "Grace"]
LAST_NAMES = ["O'Brien", "Smith", "García", "Nguyen", "Müller", "Okafor", "Kowalski", "Johnson", "Dubois",
              "Fernández-López", "MacDonald", "Papadopoulos", "Brown", "Kim", "Singh", "Rossi", "D'Angelo", "Lee"]
DOMAINS = ["example.org", "mail.example.com", "school-parents.example.net"]
SCHOOLS = ["Lincoln High", "Washington Middle", "Roosevelt Elementary"]


def parent_rows(count: int, seed: int = 7) -> Iterator[list[str]]:
    """`count` data rows (without the header) of a filled-in parent-accounts template."""
    rng = random.Random(seed)
    student = 100_000
    made = 0
    parent = 0
    while made < count:
        parent += 1
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        # Email addresses (and the usernames made from them) are ASCII, as nearly all are: "Zoë Müller" writes
        # zmuller. The names themselves keep their accents.
        plain = unicodedata.normalize("NFKD", f"{first[0]}{last}").encode("ascii", "ignore").decode()
        local = plain.lower().replace("'", "").replace(" ", "")
        email = f"{local}.{parent}@{rng.choice(DOMAINS)}"
        logon = email if rng.random() < 0.5 else f"{local}{parent}"
        password = f"Portal{rng.randrange(10**6):06d}x" if rng.random() < 0.1 else ""
        user_type = "GUARDIAN" if rng.random() < 0.2 else ""
        must_change = rng.choice(["Y", "N", ""]) if password else ""
        children = 2 if rng.random() < 0.17 else 1
        for _ in range(children):
            if made >= count:
                break
            student += 1
            ids = str(student)
            if rng.random() < 0.03:
                student += 1
                ids = f"{ids};{student}"
            child_first = rng.choice(FIRST_NAMES)
            yield [logon, first, last, email, password, user_type, ids, must_change, f"{child_first} {last}",
                   str(2026 + student % 13), f"{7 + student % 6}{'ABCD'[student % 4]}", rng.choice(SCHOOLS)]
            made += 1


def parent_file_bytes(count: int, file_format: str = "xlsx", seed: int = 7) -> bytes:
    """A parent-accounts file of `count` rows as .xlsx (openpyxl, write-only) or CSV (UTF-8) bytes."""
    rows = parent_rows(count, seed)
    if file_format == "csv":
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(HEADER)
        writer.writerows(rows)
        return text.getvalue().encode("utf-8")
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Parent accounts")
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--format", choices=["xlsx", "csv"], default="xlsx")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(parent_file_bytes(args.rows, args.format, args.seed))
    print(f"wrote {args.rows:,} rows to {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

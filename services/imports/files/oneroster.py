"""A OneRoster 1.1 CSV bundle (.zip) read as roster rows: one row per student and linked parent or guardian.

users.csv gives the people (role student, parent, guardian, relative) and links them through agentSourcedIds
(either direction); orgs.csv names schools; classes.csv with enrollments.csv gives a student's homeroom as GROUP.
Row numbers of the resulting table count its own rows (header = row 1), as in the annotated workbook.
"""

from __future__ import annotations

import csv
import io
import zipfile

from .csvtext import decode_text
from .errors import CorruptFile, MissingColumns, TooManyRows
from .formats import FileFormat
from .intake import find_bundle_file
from .kinds import ROSTER_COLUMNS
from .limits import Limits
from .table import Table

HEADER = [*ROSTER_COLUMNS, "CONTACT_PHONE"]
AGENT_ROLES = {"parent": "Y", "guardian": "Y", "relative": "N"}


def read_bundle(data: bytes, limits: Limits) -> Table:
    """The roster table of a OneRoster bundle; students without a linked agent get one row without a contact."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    users_path = find_bundle_file(names, "users.csv")
    if users_path is None:
        raise MissingColumns("The OneRoster bundle holds no users.csv: export the bundle again with users included.")
    folder = users_path.rsplit("/", 1)[0] + "/" if "/" in users_path else ""
    users = _read(archive, users_path, limits, required=("sourcedId", "role"))
    orgs = _read_optional(archive, folder, "orgs.csv", limits)
    classes = _read_optional(archive, folder, "classes.csv", limits)
    enrollments = _read_optional(archive, folder, "enrollments.csv", limits)

    people = {u["sourcedid"]: u for u in users if u["sourcedid"] and u.get("status", "").lower() != "tobedeleted"}
    schools = {o["sourcedid"]: o.get("name", "") for o in orgs if o.get("sourcedid")}
    homerooms = {c["sourcedid"]: c.get("title", "") for c in classes
                 if c.get("sourcedid") and c.get("classtype", "").lower() == "homeroom"}
    group_of: dict[str, str] = {}
    for e in enrollments:
        title = homerooms.get(e.get("classsourcedid", ""))
        if title and e.get("role", "").lower() == "student" and e.get("status", "").lower() != "tobedeleted":
            group_of.setdefault(e.get("usersourcedid", ""), title)

    agents_of: dict[str, list[str]] = {}
    for person in people.values():
        for other in _ids(person.get("agentsourcedids", "")):
            if other not in people:
                continue
            student, agent = ((person["sourcedid"], other) if person["role"].lower() == "student"
                              else (other, person["sourcedid"]))
            if people[student]["role"].lower() == "student" and people[agent]["role"].lower() in AGENT_ROLES:
                listed = agents_of.setdefault(student, [])
                if agent not in listed:
                    listed.append(agent)

    rows: list[list[str]] = []
    for person in people.values():
        if person["role"].lower() != "student":
            continue
        student_part = [
            person.get("identifier", "") or person["sourcedid"], person.get("givenname", ""),
            person.get("familyname", ""), "", group_of.get(person["sourcedid"], ""), _school(person, schools)]
        agents = agents_of.get(person["sourcedid"], [])
        for agent_id in agents or [""]:
            agent = people.get(agent_id, {})
            role = agent.get("role", "").lower()
            contact_part = [
                agent_id, agent.get("givenname", ""), agent.get("familyname", ""), agent.get("email", ""),
                role, AGENT_ROLES.get(role, ""), "", agent.get("phone", "") or agent.get("sms", "")] if agent_id else [
                ""] * 8
            rows.append(student_part + contact_part)
            if len(rows) > limits.max_rows:
                raise TooManyRows(
                    f"The OneRoster bundle links more than {limits.max_rows:,} student-contact pairs, more than the "
                    "portal reads in one file: export one school at a time.")
    return Table(FileFormat.ONEROSTER, users_path, 1, list(HEADER), rows)


def _read(archive: zipfile.ZipFile, path: str, limits: Limits, required: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        text, _ = decode_text(archive.read(path))
        reader = csv.reader(io.StringIO(text, newline=""))
        header = [h.strip().lower() for h in next(reader, [])]
        missing = [r for r in required if r.lower() not in header]
        if missing:
            raise MissingColumns(
                f"The OneRoster file {path} lacks the columns {', '.join(missing)}: export the bundle again as "
                "OneRoster 1.1 CSV.")
        found = []
        for row in reader:
            if len(found) >= limits.max_rows * 4:
                raise TooManyRows(f"The OneRoster file {path} has too many rows: export one school at a time.")
            found.append({h: v.strip() for h, v in zip(header, row, strict=False)})
        return found
    except (zipfile.BadZipFile, csv.Error, EOFError, OSError) as exc:
        raise CorruptFile(f"The OneRoster file {path} cannot be read ({exc}): export the bundle again and send the "
                          "new .zip.") from None


def _read_optional(archive: zipfile.ZipFile, folder: str, name: str, limits: Limits) -> list[dict[str, str]]:
    path = next((n for n in archive.namelist() if n.lower() == (folder + name).lower()), None)
    return _read(archive, path, limits, required=("sourcedId",)) if path else []


def _ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _school(person: dict[str, str], schools: dict[str, str]) -> str:
    for org in _ids(person.get("orgsourcedids", "")):
        if org in schools:
            return schools[org]
    return ""

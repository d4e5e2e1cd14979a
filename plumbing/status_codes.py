"""The status-code catalogue: one stable code per problem a row or a file can have, what it means, and the fix.

Codes are part of the public interface (staff look them up with `/portal codes`, and they are written into
annotated workbooks): add new ones freely, never rename or reuse one. Codes starting with W_ are warnings (the
row still goes ahead); S_ marks rows skipped on purpose; E_ are errors (the row is skipped until fixed).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StatusCode:
    code: str
    meaning: str
    fix: str

    @property
    def warning(self) -> bool:
        return not self.code.startswith("E_")


_CATALOGUE: dict[str, StatusCode] = {}


def define(code: str, meaning: str, fix: str) -> StatusCode:
    if code in _CATALOGUE:
        raise ValueError(f"status code {code} defined twice")
    entry = StatusCode(code, meaning, fix)
    _CATALOGUE[code] = entry
    return entry


def lookup(code: str) -> StatusCode:
    return _CATALOGUE[code]


def catalogue() -> list[StatusCode]:
    return sorted(_CATALOGUE.values(), key=lambda c: c.code)


# Row rules checked by the accounts service when it plans a row --------------------------------------------------
E_REQUIRED = define("E_REQUIRED", "A required column is empty.", "Fill in the column named in the message.")
E_USERNAME_SHORT = define(
    "E_USERNAME_SHORT", "The username (LOGONID) has fewer than 6 characters.",
    "Use at least 6 characters; usernames are not case-sensitive.")
E_USERNAME_CHARS = define(
    "E_USERNAME_CHARS", "The username contains spaces inside it, control characters or is too long.",
    "Use letters, digits and . _ - @ only, at most 150 characters.")
E_USERNAME_TAKEN = define(
    "E_USERNAME_TAKEN", "The username already belongs to another account (usernames are unique across the "
    "whole district, whatever the case, for parent, student and staff accounts alike).",
    "Choose another username, or correct the row if it is meant to be that account.")
E_PASSWORD_RULES = define(
    "E_PASSWORD_RULES", "The password breaks the rules: at least 8 characters with an upper-case letter, a "
    "lower-case letter and a digit.", "Type a stronger password, or leave PASSWORD empty to send an invitation.")
E_PASSWORD_COMMON = define(
    "E_PASSWORD_COMMON", "The password is one of the most common passwords, or is the username itself.",
    "Choose a password nobody would guess, or leave PASSWORD empty to send an invitation.")
E_EMAIL_INVALID = define(
    "E_EMAIL_INVALID", "The email address is not valid.", "Correct the address (name@example.org).")
E_EMAIL_IN_USE = define(
    "E_EMAIL_IN_USE", "The email address already belongs to an account with another username.",
    "Use that account's username, or correct the email.")
E_USER_TYPE = define(
    "E_USER_TYPE", "USER_TYPE is not one the portal knows.", "Use GUARDIAN or STUDENT (empty means GUARDIAN).")
E_TYPE_MISMATCH = define(
    "E_TYPE_MISMATCH", "The username exists with another account type (for example a staff account).",
    "Choose another username: one person cannot hold the same username as parent and staff.")
E_FLAG_VALUE = define(
    "E_FLAG_VALUE", "A yes/no column holds something other than Y or N.", "Write Y or N, or leave it empty.")
E_STUDENT_UNKNOWN = define(
    "E_STUDENT_UNKNOWN", "A student id is not in the roster.",
    "Check the id against the roster, or import the roster first.")
E_FIELD_TOO_LONG = define(
    "E_FIELD_TOO_LONG", "A value is longer than the portal stores.", "Shorten it (names 100, email 254 characters).")
E_DUPLICATE_CONFLICT = define(
    "E_DUPLICATE_CONFLICT", "The same username appears on several rows whose name, email or type disagree.",
    "Make the rows agree (siblings share one parent row's details), or use different usernames.")
E_DUPLICATE_EMAIL = define(
    "E_DUPLICATE_EMAIL", "The same email appears on several rows with different usernames.",
    "Give one person one username, or correct the email.")
W_UNCHANGED = define(
    "W_UNCHANGED", "The row changes nothing: the account already holds these details and links.",
    "Nothing to do.")
S_NO_ACCOUNT_WANTED = define(
    "S_NO_ACCOUNT_WANTED", "All parent columns of this template row are empty: no account is wanted.",
    "Nothing to do, or fill the row in to create an account.")

# Added by the accounts service ------------------------------------------------------------------------------------
E_NAME_CHARS = define(
    "E_NAME_CHARS", "A name contains control characters (tabs, line breaks or other invisible characters).",
    "Retype the name without them.")
E_NO_CONTACT = define(
    "E_NO_CONTACT", "The roster marks this contact with a court order or no-contact flag: they must not get "
    "access to any student.", "Remove the row, or correct the flag in the school's information system first.")
W_NO_EMAIL = define(
    "W_NO_EMAIL", "The new account has neither a password nor an email address: nobody can sign in to it yet.",
    "Add an EMAIL so an invitation can be sent, or type a PASSWORD.")
E_USERNAME_UNKNOWN = define(
    "E_USERNAME_UNKNOWN", "No account has this username (a student-links file only adds students to accounts that "
    "exist).", "Check the username, or create the account first with a parent-accounts file.")

# Row rules checked while reading a file (services/imports/files) ---------------------------------------------------
E_ID_SCIENTIFIC = define(
    "E_ID_SCIENTIFIC", "An id was turned into scientific notation by Excel (for example 1.23457E+14), so its last "
    "digits are lost.",
    "Format the id column as Text in Excel, type or paste the full ids again, save, and send the file again.")
E_YEAR_INVALID = define(
    "E_YEAR_INVALID", "GRAD_YEAR is not a year.", "Write a four-digit year such as 2031, or leave it empty.")
E_ROSTER_CONFLICT = define(
    "E_ROSTER_CONFLICT", "The same student or contact appears on several rows whose details disagree.",
    "Make the rows agree (one student's or contact's details are the same on every row), or correct the id.")
S_DUPLICATE_ROW = define(
    "S_DUPLICATE_ROW", "The row repeats an earlier row of the file: it adds nothing.",
    "Nothing to do; delete the repeated row if you like.")
W_COLUMN_IGNORED = define(
    "W_COLUMN_IGNORED", "A column the portal does not read for this kind of file was ignored.",
    "Nothing to do, or rename its header if it was meant to be one of the columns the portal reads.")

# Whole-file refusals (the file is not read and no job is created) -------------------------------------------------
E_FILE_TOO_LARGE = define(
    "E_FILE_TOO_LARGE", "The file is larger than the portal accepts.",
    "Split the file into smaller files and send each one.")
E_FILE_TOO_MANY_ROWS = define(
    "E_FILE_TOO_MANY_ROWS", "The sheet has more rows than the portal reads in one file.",
    "Split the rows over several files, or delete empty rows below the data.")
E_FILE_TOO_MANY_COLUMNS = define(
    "E_FILE_TOO_MANY_COLUMNS", "The sheet has more columns than the portal reads.",
    "Delete the columns the import does not need (a stray value far to the right counts too).")
E_FILE_EMPTY = define(
    "E_FILE_EMPTY", "The file holds no rows to read.", "Send the file that holds the rows.")
E_FILE_TYPE_MISMATCH = define(
    "E_FILE_TYPE_MISMATCH", "The file is not what its name says (for example a .xlsx name on a CSV file).",
    "Open the file in Excel and save it again as Excel Workbook (.xlsx) or CSV, then send that file.")
E_FILE_NOT_SPREADSHEET = define(
    "E_FILE_NOT_SPREADSHEET", "The file is not a spreadsheet the portal reads (for example a PDF or an image).",
    "Send an Excel workbook (.xlsx), a CSV file or a OneRoster .zip bundle.")
E_FILE_WEB_PAGE = define(
    "E_FILE_WEB_PAGE", "The file is a web page, not a spreadsheet: Slack served a login page instead of the file.",
    "Ask your Slack admin to give the bot the files:read scope, then drop the file again.")
E_FILE_PASSWORD = define(
    "E_FILE_PASSWORD", "The workbook is protected with a password, so it cannot be read.",
    "In Excel choose File > Info > Protect Workbook > Encrypt with Password, clear the password, save, and send "
    "the file again.")
E_FILE_OLD_FORMAT = define(
    "E_FILE_OLD_FORMAT", "The file is in the old Excel 97-2003 format (.xls), which the portal does not read.",
    "Open it in Excel and save it as Excel Workbook (.xlsx), then send that file.")
E_FILE_ZIP_BOMB = define(
    "E_FILE_ZIP_BOMB", "The file would expand to far more data than a real spreadsheet holds (a 'zip bomb').",
    "Send the original spreadsheet exported from Excel or your student information system.")
E_FILE_CORRUPT = define(
    "E_FILE_CORRUPT", "The file is damaged and cannot be read.",
    "Open it in Excel, save a fresh copy (Save As .xlsx), and send that copy.")
E_FILE_UNREADABLE = define(
    "E_FILE_UNREADABLE", "The portal could not read this file within its memory and time limits.",
    "Delete empty rows and columns after your data (or split the file), save it as .xlsx, and send it again.")
E_FILE_UNKNOWN_KIND = define(
    "E_FILE_UNKNOWN_KIND", "The header row matches none of the kinds of file the portal reads.",
    "Rename the headers to one kind's columns (see the message), or start from the upload template.")
E_FILE_MISSING_COLUMNS = define(
    "E_FILE_MISSING_COLUMNS", "The file looks like a known kind but lacks some of its columns.",
    "Add the missing columns named in the message (they may be left empty where allowed).")
E_FILE_DUPLICATE_COLUMN = define(
    "E_FILE_DUPLICATE_COLUMN", "Two columns of the header row mean the same thing.",
    "Delete or rename one of the two columns named in the message.")

# Generation of accounts from the roster (services/accounts/generation_rules.py): why a contact gets no account ----
S_NO_EMAIL = define(
    "S_NO_EMAIL", "The contact has no email address, so no account is generated for them.",
    "Add the contact's email address in the school's information system, then generate again.")
S_NO_PARENTAL_RESPONSIBILITY = define(
    "S_NO_PARENTAL_RESPONSIBILITY", "The contact does not have parental responsibility for this student.",
    "Nothing to do, or mark parental responsibility in the school's information system if it is wrong.")
S_NOT_PRIMARY = define(
    "S_NOT_PRIMARY", "Only primary (priority) contacts were chosen, and this contact is not one for this student.",
    "Generate for all contacts, or mark the contact as primary in the school's information system.")
S_COURT_ORDER = define(
    "S_COURT_ORDER", "The roster marks this contact (or the same person on another contact record) with a court "
    "order or no-contact flag: they must not get access to any student.",
    "Nothing to do; correct the flag in the school's information system only if it is wrong.")
S_STAFF_EMAIL = define(
    "S_STAFF_EMAIL", "The contact's email address already belongs to a staff (or student) account; usernames and "
    "emails are unique across the district, so the parent account cannot use it.",
    "Ask the staff member to give their personal email for their parent record in the information system.")
S_SHARED_EMAIL = define(
    "S_SHARED_EMAIL", "The contact's email address is shared with a different guardian (another name), so it "
    "cannot tell who the account is for.",
    "Give each guardian their own email address in the school's information system, then generate again.")
S_INVALID_EMAIL = define(
    "S_INVALID_EMAIL", "The contact's email address is not a valid address.",
    "Correct the address in the school's information system (name@example.org).")
W_POSSIBLE_DUPLICATE = define(
    "W_POSSIBLE_DUPLICATE", "Another contact record has the same name and phone or address but a different email: "
    "possibly the same person typed twice. Nothing is merged.",
    "Check both records in the school's information system; merge them there if they are one person.")
W_CHANGED_SINCE_PLAN = define(
    "W_CHANGED_SINCE_PLAN", "The roster or the accounts changed between the plan that was shown and the run.",
    "Nothing to do for what was applied; plan again to see (and run) what is new.")
W_USERNAME_FALLBACK = define(
    "W_USERNAME_FALLBACK", "The email address could not be the username (taken by another account, or holding "
    "characters usernames cannot), so first initial + last name + a number was used.",
    "Nothing to do; the invitation email tells the parent their username.")

# Account care (services/accounts/policy_rules.py, drift_rules.py): policies, permissions, contact drift ---------
E_POLICY_VALUE = define(
    "E_POLICY_VALUE", "A policy value is out of range or not one the portal knows.",
    "Use must_change_password yes/no, two_factor off/optional/required, min_password_length 8 to 64, "
    "invite_expiry_days 1 to 60, default_permissions a list of grades, attendance, reports, messages.")
E_PERMISSION_UNKNOWN = define(
    "E_PERMISSION_UNKNOWN", "A permission name is not one the portal knows.",
    "Use grades, attendance, reports or messages.")
E_SCHOOL_UNKNOWN = define(
    "E_SCHOOL_UNKNOWN", "No student or account belongs to a school of that name.",
    "Check the school's name as the roster spells it (`/portal policy show` lists the schools).")
W_ACCOUNT_DRIFT = define(
    "W_ACCOUNT_DRIFT", "The contact's email or name changed, and the parent account made for them still holds the "
    "old one (PORTAL_CONTACT_CHANGES=report).",
    "Run `/portal drift` and apply the changes you want; the parent is emailed at both addresses.")
W_ACCOUNT_UPDATED = define(
    "W_ACCOUNT_UPDATED", "The contact's email or name changed, and the parent account made for them was updated to "
    "match (PORTAL_CONTACT_CHANGES=update); the parent is emailed at both addresses.", "Nothing to do.")

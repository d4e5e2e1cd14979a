"""CSV text: decoding (UTF-8 with or without BOM, UTF-16 with BOM, else Windows-1252) and the delimiter."""

from __future__ import annotations

import codecs


def decode_text(data: bytes) -> tuple[str, str]:
    """The text of a CSV file and the encoding it was found in; a BOM is removed so it never breaks a header."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def sniff_delimiter(text: str) -> str:
    """The delimiter of the first non-blank line: the most frequent of comma, semicolon and tab (comma on a tie)."""
    line = ""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        line = text[start:end]
        if line.strip():
            break
        start = end + 1
    outside = _outside_quotes(line)
    counts = {d: outside.count(d) for d in (",", ";", "\t")}
    best = max(counts.values())
    if best == 0 or counts[","] == best:
        return ","
    return ";" if counts[";"] == best else "\t"


def _outside_quotes(line: str) -> str:
    parts = line.split('"')
    return "".join(parts[0::2])

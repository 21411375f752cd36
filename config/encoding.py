"""Why bytes meant to be UTF-8 JSON are not: the one check behind config files and intents files alike.

Editors and shells save text in other encodings without saying so: a UTF-8 byte order mark (Notepad), UTF-16
(Windows PowerShell 5's ``>`` and ``Out-File``). A JSON parser reports either as an invalid character at byte 0;
this names the encoding and what to do instead.
"""

from __future__ import annotations

import codecs

_FOREIGN_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),  # before UTF-16: FF FE 00 00
                 (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def encoding_problem(data: bytes) -> str | None:
    """What is wrong with the encoding of ``data`` (a whole file, or a line of one), or None when nothing shows."""
    if data.startswith(codecs.BOM_UTF8):
        return "starts with a UTF-8 byte order mark (BOM), invisible in most editors: save it as UTF-8 without BOM"
    for bom, name in _FOREIGN_BOMS:
        if data.startswith(bom):
            return f"is {name} text (it starts with a {name} byte order mark): save it as UTF-8"
    if b"\x00" in data:
        return _nul_problem(data)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:  # the decoder of an intents line counted from its first string, not the line
        return f"byte {error.start} (0x{data[error.start]:02x}) is not UTF-8 text: save it as UTF-8"
    return None


def _nul_problem(data: bytes) -> str:
    """NUL bytes between the characters are UTF-16 or UTF-32 text; a run of them before or after text that holds
    none is space a writer that died never filled (the filesystem had extended the file, a crash or power loss
    lost the bytes): "save it as UTF-8" sent the user after an encoding that was never there."""
    text = data.rstrip(b"\r\n")
    inner = text.strip(b"\x00")
    if b"\x00" in inner:
        return "holds NUL bytes, as UTF-16 or UTF-32 text does: save it as UTF-8"
    where = "and no text" if not inner else "before its text" if text.startswith(b"\x00") else "after its text"
    return (f"holds {len(text) - len(inner)} NUL bytes {where}, as a file does whose writer died while "
            "extending it (a crash, a power loss): delete the NUL bytes")


def escape_controls(text: str) -> str:
    """``text`` with every character a terminal acts on instead of showing (ESC, BEL, backspace, NUL, a line or
    paragraph separator) written as its escape: an intents line or file quoted in an error message could otherwise
    clear the operator's screen or rewrite the line (``\\x1b[2J``) that says what went wrong."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)

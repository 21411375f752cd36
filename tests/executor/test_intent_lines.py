"""Intent lines a careless or hostile producer writes: a key given twice, a line with no end (``/dev/zero``, a
binary file), an over-long line in a followed file. Each is a malformed line naming file and line; nothing
is buffered without bound, and in follow mode the lines after it are read."""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router_tuner.executor.intents import MAX_LINE_BYTES, IntentFormatError, JsonlIntentSource
from router_tuner.router.events import Intent
from tests.executor.test_executor_support import intent


def _line(intent_id: str) -> bytes:
    return msgspec.json.encode(intent(intent_id, size_hint_usd=300.0, ts_ns=time.time_ns())) + b"\n"


def _read_all(source: JsonlIntentSource) -> list[Intent]:
    got = []
    while (item := source.next_intent(0.0)) is not None:
        got.append(item)
    return got


def test_a_key_given_twice_is_a_malformed_line_not_the_last_value(tmp_path: Path) -> None:
    good = json.loads(_line("a"))
    text = json.dumps(good)[:-1] + ', "size_hint_usd": 99999999.0}'
    path = tmp_path / "intents.jsonl"
    path.write_text(text + "\n")
    source = JsonlIntentSource(path, follow=False)
    with pytest.raises(IntentFormatError, match=r"intents.jsonl:1: duplicate key\(s\) size_hint_usd") as caught:
        source.next_intent(0.0)
    assert caught.value.line.raw == text.encode()


@given(st.dictionaries(st.sampled_from(["size_hint_usd", "side", "symbol"]), st.just(1), min_size=1))
def test_only_repeated_keys_are_refused(repeats: dict[str, int]) -> None:
    """Any subset of fields repeated is named, in order; the same line without the repeats decodes."""
    base = json.dumps(json.loads(_line("a")))
    repeated = base[:-1] + "".join(f', "{key}": {json.dumps(json.loads(base)[key])}' for key in repeats) + "}"
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "i.jsonl"
        path.write_text(base + "\n" + repeated + "\n")
        source = JsonlIntentSource(path, follow=False)
        assert source.next_intent(0.0) is not None
        with pytest.raises(IntentFormatError, match=", ".join(sorted(repeats))):
            source.next_intent(0.0)
        source.close()


def test_a_line_without_end_is_refused_without_reading_it_all() -> None:
    """``/dev/zero`` never ends a line: the source stops at the bound instead of filling memory."""
    source = JsonlIntentSource("/dev/zero", follow=False)
    with pytest.raises(IntentFormatError, match=f"/dev/zero:1: line longer than {MAX_LINE_BYTES} bytes") as caught:
        source.next_intent(0.0)
    assert len(caught.value.line.raw) == MAX_LINE_BYTES
    source.close()


def test_a_line_of_exactly_the_bound_is_read(tmp_path: Path) -> None:
    line = _line("a")
    padded = line[:-2] + b" " * (MAX_LINE_BYTES - len(line) + 1) + b"}\n"  # JSON whitespace up to the bound
    assert len(padded) == MAX_LINE_BYTES + 1
    path = tmp_path / "intents.jsonl"
    path.write_bytes(padded)
    assert [i.intent_id for i in _read_all(JsonlIntentSource(path, follow=False))] == ["a"]


def test_follow_mode_reports_an_over_long_line_once_and_reads_the_lines_after(tmp_path: Path) -> None:
    path = tmp_path / "intents.jsonl"
    path.write_bytes(_line("a") + b"x" * (3 * MAX_LINE_BYTES) + b"\n" + _line("b"))
    source = JsonlIntentSource(path, follow=True)
    assert source.next_intent(0.0).intent_id == "a"  # type: ignore[union-attr]
    with pytest.raises(IntentFormatError, match=":2: line longer than"):
        source.next_intent(0.0)
    got = None
    for _ in range(10):  # the rest of line 2 is read past within the timeouts, never buffered
        got = source.next_intent(0.01)
        if got is not None:
            break
    assert got is not None and got.intent_id == "b"
    with path.open("ab") as handle:
        handle.write(_line("c"))
    assert source.next_intent(0.0).intent_id == "c"  # type: ignore[union-attr]
    source.close()


def _next(source: JsonlIntentSource) -> Intent | None:
    """The next intent within a few polls (a followed file is read as it grows)."""
    for _ in range(5):
        got = source.next_intent(0.01)
        if got is not None:
            return got
    return None


def test_a_followed_file_truncated_and_rewritten_is_read_again_from_line_1(tmp_path: Path) -> None:
    """A producer that restarts its file used to lose every intent it wrote after (read at the old offset,
    half a line quarantined)."""
    path = tmp_path / "intents.jsonl"
    path.write_bytes(_line("a") + _line("b"))
    source = JsonlIntentSource(path, follow=True)
    assert [_next(source).intent_id, _next(source).intent_id] == ["a", "b"]  # type: ignore[union-attr]
    path.write_bytes(_line("c"))  # shorter than what was read: truncated
    got = _next(source)
    assert got is not None and got.intent_id == "c"
    with path.open("ab") as handle:
        handle.write(b"{bad\n")
    with pytest.raises(IntentFormatError, match=":2: "):  # numbered in the new content
        _next(source)
    source.close()


@pytest.mark.parametrize("follow", [False, True])
def test_a_file_rewritten_while_read_is_read_again_never_spliced(tmp_path: Path, follow: bool) -> None:
    """Without ``--follow`` the reader went on at its old offset in the new content, after the 8 KiB it had
    buffered of the old: `live` stopped at a line glued from both ("unknown field `position_sis_stop`", named by a
    line number of neither file), and a splice at a field boundary would have been routed. (Followed, it was read
    again already; now the check comes after each read, so a rewrite during one is caught too.)"""
    path = tmp_path / "intents.jsonl"
    path.write_bytes(b"".join(_line(f"old{k}") for k in range(200)))  # far more than one buffered read
    source = JsonlIntentSource(path, follow=follow)
    assert [_next(source).intent_id for _ in range(3)] == ["old0", "old1", "old2"]  # type: ignore[union-attr]
    path.write_bytes(b"".join(_line(f"new{k}") for k in range(100)))
    got = [item.intent_id for item in iter(lambda: source.next_intent(0.0), None)]
    assert got == [f"new{k}" for k in range(100)]
    source.close()

def test_a_followed_file_replaced_by_rename_is_read_to_its_end_before_the_new_one(tmp_path: Path) -> None:
    """A producer that rotates its own file (writes the next one, renames it over): the lines of the old file the
    executor had not reached yet were dropped with it, every one an intent lost without a word."""
    path = tmp_path / "intents.jsonl"
    path.write_bytes(b"".join(_line(f"old{k}") for k in range(200)))
    source = JsonlIntentSource(path, follow=True)
    assert [_next(source).intent_id for _ in range(3)] == ["old0", "old1", "old2"]  # type: ignore[union-attr]
    (tmp_path / "next.jsonl").write_bytes(b"".join(_line(f"new{k}") for k in range(50)))
    (tmp_path / "next.jsonl").replace(path)
    got = [item.intent_id for item in iter(lambda: source.next_intent(0.0), None)]
    assert got == [f"old{k}" for k in range(3, 200)] + [f"new{k}" for k in range(50)]
    source.close()

def test_a_followed_file_replaced_by_a_folder_is_not_opened_and_the_next_file_is(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A folder put at the followed path stopped `live` with "Is a directory: …; choose a location that can be
    written", without its summary (a FIFO would have blocked the loop in ``open``); a symlink loop, with ELOOP."""
    path = tmp_path / "intents.jsonl"
    path.write_bytes(_line("a"))
    source = JsonlIntentSource(path, follow=True)
    assert _next(source).intent_id == "a"  # type: ignore[union-attr]
    path.unlink()
    path.mkdir()
    with caplog.at_level("WARNING", logger="executor.intents"):
        assert source.next_intent(0.0) is None and source.next_intent(0.0) is None
    assert [r.getMessage() for r in caplog.records] == [
        f"intents file {path} was replaced by something not read (not a regular file (a folder, FIFO or device)); "
        "the old file is still followed"]  # once
    path.rmdir()
    path.symlink_to(path)  # a loop: os.stat raised ELOOP out of the loop
    assert source.next_intent(0.0) is None
    path.unlink()
    path.write_bytes(_line("a") + _line("b"))
    assert [_next(source).intent_id, _next(source).intent_id] == ["a", "b"]  # type: ignore[union-attr]
    source.close()

def test_a_followed_file_rewritten_in_place_longer_than_before_is_read_again(tmp_path: Path) -> None:
    """Truncated and rewritten with as many bytes before the poll: the size alone cannot tell, the first
    bytes do."""
    path = tmp_path / "intents.jsonl"
    path.write_bytes(_line("a1") + _line("b1"))
    source = JsonlIntentSource(path, follow=True)
    assert [_next(source).intent_id, _next(source).intent_id] == ["a1", "b1"]  # type: ignore[union-attr]
    path.write_bytes(_line("c1") + _line("d1") + _line("e1"))
    assert [_next(source).intent_id for _ in range(3)] == ["c1", "d1", "e1"]  # type: ignore[union-attr]
    with path.open("ab") as handle:  # plain growth after that is read on, not from the start
        handle.write(_line("f1"))
    assert _next(source).intent_id == "f1"  # type: ignore[union-attr]
    assert source.next_intent(0.0) is None
    source.close()


def test_a_followed_file_replaced_by_rename_is_read_from_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "intents.jsonl"
    path.write_bytes(_line("a"))
    source = JsonlIntentSource(path, follow=True)
    assert _next(source).intent_id == "a"  # type: ignore[union-attr]
    fresh = tmp_path / "next.jsonl"
    fresh.write_bytes(_line("a") + _line("b") + _line("c"))  # longer than the old file: only the inode says
    fresh.replace(path)
    assert [_next(source).intent_id for _ in range(3)] == ["a", "b", "c"]  # type: ignore[union-attr]
    path.unlink()  # gone, nothing new yet: keep waiting on the old file, no error
    assert source.next_intent(0.0) is None
    source.close()



@pytest.mark.parametrize("how", ["rewritten", "replaced"])
def test_an_unfinished_line_of_a_followed_file_rewritten_or_replaced_is_malformed_never_spliced(
        tmp_path: Path, how: str) -> None:
    """A producer that died mid-line and restarted its file: the start of its unfinished line was glued to the
    new file's bytes at the old offset and routed as an intent nobody wrote ("b" with "c"'s fields), and under a
    rename the new file was never read (every later intent lost)."""
    path = tmp_path / "intents.jsonl"
    path.write_bytes(_line("a") + _line("b")[:40])
    source = JsonlIntentSource(path, follow=True)
    assert _next(source).intent_id == "a"  # type: ignore[union-attr]
    assert source.next_intent(0.0) is None  # "b" is still being written
    if how == "rewritten":
        path.write_bytes(_line("a") + _line("c"))
    else:
        (tmp_path / "next.jsonl").write_bytes(_line("a") + _line("c"))
        (tmp_path / "next.jsonl").replace(path)
    with pytest.raises(IntentFormatError, match=f":2: unfinished line \\(40 bytes without a newline\\) when the "
                                                f"file was {how}") as refused:
        _next(source)
    assert refused.value.line.raw == _line("b")[:40]
    assert [_next(source).intent_id, _next(source).intent_id] == ["a", "c"]  # type: ignore[union-attr]
    source.close()


def test_a_last_line_still_being_written_says_so_without_follow(tmp_path: Path) -> None:
    """Read without ``--follow`` while its writer is mid-line: "Input data was truncated" read like damage."""
    path = tmp_path / "intents.jsonl"
    path.write_bytes(_line("a") + _line("b")[:40])
    source = JsonlIntentSource(path, follow=False)
    assert _next(source).intent_id == "a"  # type: ignore[union-attr]
    with pytest.raises(IntentFormatError, match=":2: the file ends inside this line \\(no newline after it\\): its "
                                                "writer had not finished it \\(--follow tails a file being written\\)"):
        source.next_intent(0.0)
    source.close()
    path.write_bytes(_line("a") + b'{"intent_id": "b"}')  # a whole line without a newline: its own error
    whole = JsonlIntentSource(path, follow=False)
    with pytest.raises(IntentFormatError, match="missing required field"):
        _read_all(whole)
    whole.close()

def test_an_unfinished_line_completed_in_place_is_one_intent(tmp_path: Path) -> None:
    path = tmp_path / "intents.jsonl"
    whole = _line("b")
    path.write_bytes(whole[:40])
    source = JsonlIntentSource(path, follow=True)
    assert source.next_intent(0.0) is None
    with path.open("ab") as handle:
        handle.write(whole[40:])
    assert _next(source).intent_id == "b"  # type: ignore[union-attr]
    source.close()


@pytest.mark.parametrize("poll_s", [0.0, -0.01, math.nan, math.inf])
def test_a_follow_poll_interval_must_be_a_positive_number_of_seconds(tmp_path: Path, poll_s: float) -> None:
    path = tmp_path / "intents.jsonl"
    path.write_bytes(_line("a"))
    with pytest.raises(ValueError, match="poll_s must be a finite number of seconds > 0"):
        JsonlIntentSource(path, follow=True, poll_s=poll_s)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_a_nan_or_infinite_size_written_by_python_names_the_field(tmp_path: Path, literal: str) -> None:
    """``json.dumps`` writes ``NaN``; the line was refused as ``JSON is malformed: invalid character (byte 227)``."""
    fields = json.loads(_line("a"))
    text = json.dumps(fields).replace('"size_hint_usd": 300.0', f'"size_hint_usd": {literal}')
    path = tmp_path / "intents.jsonl"
    path.write_text(text + "\n" + "[NaN]\n")
    source = JsonlIntentSource(path, follow=True)
    with pytest.raises(IntentFormatError, match=r"intents.jsonl:1: size_hint_usd: NaN and Infinity are not JSON "
                                                r"numbers: write a finite number"):
        source.next_intent(0.0)
    with pytest.raises(IntentFormatError, match=r"intents.jsonl:2: Expected `object`, got `array`"):
        source.next_intent(0.0)  # not an object: msgspec's own words


@pytest.mark.parametrize("literal", ["1e400", "-1E+309"])
def test_a_size_past_the_float_range_is_named_as_such_not_as_nan(tmp_path: Path, literal: str) -> None:
    """It read "size_hint_usd: NaN and Infinity are not JSON numbers", which the line never held."""
    text = _line("a").decode().replace('"size_hint_usd":300.0', f'"size_hint_usd":{literal}')
    path = tmp_path / "intents.jsonl"
    path.write_text(text)
    source = JsonlIntentSource(path, follow=False)
    with pytest.raises(IntentFormatError, match=f"intents.jsonl:1: size_hint_usd: {re.escape(literal)} is beyond the "
                                                "largest number a 64-bit float holds \\(1.8e308\\): write a finite "
                                                "number"):
        source.next_intent(0.0)
    source.close()

def test_a_malformed_lines_reason_shows_control_characters_as_escapes(tmp_path: Path) -> None:
    """The reason quotes the line and is logged, alerted and shown by ``health`` under ``--follow``: an ESC sequence
    in it reached the operator's terminal as written."""
    path = tmp_path / "intents.jsonl"
    path.write_bytes(b'{"intent_id": "a", "side\\u001b]0;owned\\u0007": 1}\n')
    source = JsonlIntentSource(path, follow=True)
    with pytest.raises(IntentFormatError) as refused:
        source.next_intent(0.0)
    assert "`side\\x1b]0;owned\\x07`" in refused.value.line.reason and refused.value.line.reason.isprintable()
    source.close()

@pytest.mark.parametrize("nested", ["[" * 200_000 + "]" * 200_000, '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_a_line_nested_past_the_stack_is_a_malformed_line_and_the_next_is_read(tmp_path: Path, nested: str) -> None:
    """Naming its fault parsed it again with ``json``, which raised RecursionError: "unexpected RecursionError",
    exit 1, and under ``--follow`` one such line stopped the executor instead of being quarantined."""
    path = tmp_path / "intents.jsonl"
    path.write_bytes(b'{"intent_id": "a", "x": ' + nested.encode() + b"}\n" + _line("b"))
    source = JsonlIntentSource(path, follow=True)
    with pytest.raises(IntentFormatError, match=r"intents\.jsonl:1: Object contains unknown field `x`"):
        source.next_intent(0.0)
    assert _next(source).intent_id == "b"  # type: ignore[union-attr]
    source.close()

@pytest.mark.parametrize("follow", [False, True])
def test_a_file_saved_as_utf16_is_named_as_such_on_every_line(tmp_path: Path, follow: bool) -> None:
    """Windows PowerShell's ``>`` writes UTF-16: each line was ``JSON is malformed: invalid character (byte 0)``
    (under ``--follow`` every line quarantined with it)."""
    path = tmp_path / "intents.jsonl"
    path.write_bytes((_line("a") + _line("b")).decode().encode("utf-16"))
    source = JsonlIntentSource(path, follow=follow)
    with pytest.raises(IntentFormatError, match=r"intents.jsonl:1: is UTF-16 text \(it starts with a UTF-16 byte "
                                                r"order mark\): save it as UTF-8"):
        source.next_intent(0.0)
    if follow:  # the source moved past line 1: the next is named too
        with pytest.raises(IntentFormatError, match=r"intents.jsonl:2: holds NUL bytes, as UTF-16 or UTF-32 text "
                                                    r"does: save it as UTF-8"):
            source.next_intent(0.0)


@pytest.mark.parametrize(("padding", "says"), [(b"\x00" * 100, "holds 100 NUL bytes before its text"),
                                               (b"\x00" * 7 + b"\n", "holds 7 NUL bytes and no text")])
def test_nul_padding_left_by_a_writer_that_died_is_not_called_utf16(tmp_path: Path, padding: bytes, says: str) -> None:
    """A producer killed by a crash or power loss leaves NUL bytes where its last lines were, then appends after them
    once restarted: it read "holds NUL bytes, as UTF-16 or UTF-32 text does: save it as UTF-8"."""
    path = tmp_path / "intents.jsonl"
    path.write_bytes(_line("a") + padding + _line("b"))
    source = JsonlIntentSource(path, follow=True)
    assert _next(source).intent_id == "a"  # type: ignore[union-attr]
    with pytest.raises(IntentFormatError, match=f"intents.jsonl:2: {says}, as a file does whose writer died while "
                                                "extending it \\(a crash, a power loss\\): delete the NUL bytes"):
        source.next_intent(0.0)
    source.close()

def test_a_byte_order_mark_is_named_as_such(tmp_path: Path) -> None:
    """A file saved with a BOM used to be refused as ``JSON is malformed: invalid character (byte 0)``: nothing to
    see in an editor."""
    path = tmp_path / "intents.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _line("a"))
    source = JsonlIntentSource(path, follow=False)
    with pytest.raises(IntentFormatError, match=r"intents.jsonl:1: starts with a UTF-8 byte order mark \(BOM\)"):
        source.next_intent(0.0)

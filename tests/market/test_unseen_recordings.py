"""Recordings the loader was not written against: other names, other capture tools, damaged captures.

Each case is either loaded sanely (the summary saying what was used and dropped) or refused with one line naming
the file (and line) and what to do; never loaded silently wrong.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from router_tuner.router.market.binance import MarketDataError, discover, load_binance, read_binance
from tests.market.test_market_binance import _futures_stream, _write


def _plain(path: Path, messages: list[dict[str, object]]) -> Path:
    """``_write`` without gzip."""
    gz = _write(path.with_name(path.name + ".tmp.gz"), messages)
    with gzip.open(gz, "rb") as fh:
        path.write_bytes(fh.read())
    gz.unlink()
    return path


def test_a_file_named_for_another_symbol_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    """BTC's recording copied under an ETH name replayed as ETHUSDT, silently."""
    path = _write(tmp_path / "usdm_ethusdt_20240101.jsonl.gz", _futures_stream())
    with pytest.raises(MarketDataError, match=r"TSTUSDT message in a file named for ETHUSDT: .*rename it") as err:
        load_binance([path])
    assert str(err.value).startswith(f"{path}:1: ")


def test_upper_case_names_and_gzip_under_a_plain_name_load_like_the_original(tmp_path: Path) -> None:
    """``USDM_TSTUSDT_20240101.JSONL.GZ`` was not discovered at all; a gzipped ``.jsonl`` failed on binary bytes."""
    whole = load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", _futures_stream())])
    for name in ("USDM_TSTUSDT_20240101.JSONL.GZ", "usdm_TSTUSDT_20240101.jsonl"):
        folder = tmp_path / name.lower().replace(".", "-")
        folder.mkdir()
        shutil.copy(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", folder / name)
        found = discover(folder)
        assert list(found) == ["usdm_tstusdt"]
        tape = load_binance(found["usdm_tstusdt"])
        assert tape.symbol == "TSTUSDT" and tape.market == "usdm"
        assert tape.bid_px.tolist() == whole.bid_px.tolist() and tape.depth_px.tolist() == whole.depth_px.tolist()


def test_the_same_hours_in_two_files_are_refused_naming_both(tmp_path: Path) -> None:
    """A ``.jsonl`` beside its ``.jsonl.gz`` (or a day copied under the next day's name) replayed every message twice,
    or failed on "depth event time ... precedes the previous depth event", naming neither cause nor cure."""
    msgs = _futures_stream()
    gz = _write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)
    plain = _plain(tmp_path / "usdm_tstusdt_20240101.jsonl", msgs)
    with pytest.raises(MarketDataError, match=r"overlaps .* in time .* the same hours recorded twice; keep one"):
        load_binance(discover(tmp_path)["usdm_tstusdt"])
    plain.unlink()
    shutil.copy(gz, tmp_path / "usdm_tstusdt_20240102.jsonl.gz")
    with pytest.raises(MarketDataError, match=r"usdm_tstusdt_2024010[12].jsonl.gz overlaps usdm_tstusdt_2024010[12]"):
        read_binance(discover(tmp_path)["usdm_tstusdt"])

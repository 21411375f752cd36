"""Re-pointing a ccxt client's endpoints at other hosts (a proxy, or the local fakes in tests)."""

from __future__ import annotations

from typing import Any


def repoint_urls(urls: dict[str, Any], api_url: str | None, ws_url: str | None) -> None:
    """Send ccxt's REST (``urls['api'][name]``) and websocket (``urls['api']['ws']``, nested) endpoints to
    other hosts, keeping each endpoint's path; None leaves that kind alone."""
    api = urls["api"]
    if not isinstance(api, dict):
        raise ValueError("ccxt urls['api'] is not a mapping; cannot re-point it")
    for key, url in api.items():
        if key == "ws":
            if ws_url is not None:
                _repoint_tree(url, ws_url)
        elif isinstance(url, str) and api_url is not None:
            api[key] = _rebase(url, api_url)


def _repoint_tree(node: dict[str, Any], base_url: str) -> None:
    for key, url in node.items():
        if isinstance(url, dict):
            _repoint_tree(url, base_url)
        elif isinstance(url, str):
            node[key] = _rebase(url, base_url)


def _rebase(url: str, base_url: str) -> str:
    parts = url.split("/", 3)  # scheme:, '', host, path
    return base_url.rstrip("/") + ("/" + parts[3] if len(parts) > 3 else "")

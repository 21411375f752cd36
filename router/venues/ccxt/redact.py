"""Masking of API secrets in every text the venue emits: log records (ours and ccxt's) and error messages.

ccxt logs request headers at DEBUG level, and Binance sends the API key in a header, so redaction has to
sit on ccxt's logger too, not only on ours.
"""

from __future__ import annotations

import logging

MASK = "***"


class SecretRedactor:
    """Replaces each configured secret (and nothing else) with ``***``."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        if any(not s for s in secrets):
            raise ValueError("secrets to redact must be non-empty strings")
        # Longest first, so a secret containing another is masked whole.
        self._secrets = tuple(sorted(set(secrets), key=len, reverse=True))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


class RedactingFilter(logging.Filter):
    """A logger filter that renders each record once and masks secrets in the message and traceback."""

    def __init__(self, redactor: SecretRedactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redactor.redact(record.getMessage())
        record.args = None
        if record.exc_info is not None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self._redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redactor.redact(record.stack_info)
        return True


def install_redaction(logger: logging.Logger, redactor: SecretRedactor) -> RedactingFilter:
    """Attach a redacting filter to ``logger``; returns it so the owner can remove it on close."""
    log_filter = RedactingFilter(redactor)
    logger.addFilter(log_filter)
    return log_filter

"""The live venue on ccxt: configuration, per-exchange quirks, response parsing, error mapping into
`router.venue` errors, and key redaction."""

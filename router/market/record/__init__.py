"""Recording live markets (ccxt.pro websockets) into the project's chunked Parquet tapes."""

"""HTTP API of the gateway (``/api/v1``) and its health check."""

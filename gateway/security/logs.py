"""One log formatter that keeps every record on one line: text from outside cannot forge lines.

A user name, an order number or a URL path may carry CR, LF or other control characters;
:class:`OneLineFormatter` escapes them in the formatted message (``\\r`` -> ``\\\\r``,
``\\n`` -> ``\\\\n``, other C0 / C1 controls and DEL as ``\\\\xNN``), so a reader or a log
shipper sees exactly one record per line. Tracebacks keep their own lines, indented under
the record they belong to.
"""

from __future__ import annotations

import logging
import re

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """``text`` with control characters escaped (backslashes first, so it reads back)."""
    return _CONTROL.sub(
        lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), text.replace("\\", "\\\\")
    )


class OneLineFormatter(logging.Formatter):
    """A :class:`logging.Formatter` whose message part is always a single line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        """Format with the message escaped by :func:`one_line`."""
        saved = record.message
        record.message = one_line(saved)
        try:
            return super().formatMessage(record)
        finally:
            record.message = saved

    def formatException(self, ei: object) -> str:
        """The traceback, each line indented so it cannot pass for a record."""
        text = super().formatException(ei)  # type: ignore[arg-type]
        return "\n".join("    " + one_line(line) for line in text.splitlines())


def configure(level: str = "INFO") -> None:
    """Log everything (uvicorn's loggers too) through one stderr handler with this formatter."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True

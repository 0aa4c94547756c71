"""URL secrets kept out of other libraries' log lines, at every level.

urllib3 logs each request at DEBUG (`"POST /in?token=... HTTP/1.1" 200 2`), and its retry
warnings quote the path; a logging filter on the loggers that a delivery goes through
rewrites such a line with every URL and path shown as `safety.redact_url` shows it (query,
userinfo and path secrets masked). A filter on a logger sees only that logger's own
records, not its children's, hence one filter per logger. `install()` runs when transport.py
is imported: before anything is sent.
"""

from __future__ import annotations

import logging
import re

from shahihooks.safety import redact_url

LOGGERS = (
    "urllib3",
    "urllib3.connection",
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "urllib3.http2.connection",
    "urllib3.contrib.pyopenssl",
    "requests",
)

# an absolute URL, or a path that starts a word (not the "/1.1" of "HTTP/1.1")
_URLISH = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+|(?<![\w/.:])/[^\s"'<>]*""")


def mask_urls(text: str) -> str:
    """`text` with each URL or path in it redacted."""
    return _URLISH.sub(lambda m: redact_url(m.group()), text)


class MaskURLs(logging.Filter):
    """Rewrites a record whose message shows a URL secret; lets every record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return True
        masked = mask_urls(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_FILTER = MaskURLs()


def install() -> None:
    """Add the filter to each of LOGGERS (once; calling again changes nothing)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)

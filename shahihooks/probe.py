"""Test deliveries (the page's `test_webhook`), and which body style a receiver verifies.

A receiver that answers 401 to a signed test delivery either has another secret or
re-encodes the parsed body before its HMAC (the page's PHP, Laravel and Node handlers all
do). `which_style()` sends one probe body in each style, a body whose styles differ (a
slash, a non-ASCII letter, an empty object), and reports which ones verified.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from shahihooks.bodystyle import BodyStyle, body_style, render
from shahihooks.payload import encode_data, envelope
from shahihooks.settings import Settings
from shahihooks.signing import Secrets, sign_headers
from shahihooks.transport import Response, post

# The page's test_webhook() payload data.
TEST_DATA: dict[str, object] = {"test": True, "ticket_id": 999, "title": "Test Ticket"}
# The same, with what the styles write differently: `\/`, `\u00e9`, `[]` for `{}`.
PROBE_DATA: dict[str, object] = {
    **TEST_DATA,
    "title": "Test Ticket – café",
    "ticket_url": "https://example.com/ticket/999/",
    "custom_fields": {},
}


@dataclass(frozen=True)
class Trial:
    """One test delivery: what was sent, in which style, and what came back."""

    delivery_id: str
    style: BodyStyle
    body: bytes
    response: Response


def send_test(
    url: str,
    event: str,
    secrets: Secrets,
    settings: Settings,
    style: BodyStyle | str = BodyStyle.STANDARD,
    data: object = TEST_DATA,
) -> Trial:
    """POST one signed test delivery of `event` to `url` now, in `style`."""
    chosen = body_style(style)
    delivery = "test_" + uuid.uuid4().hex
    body = envelope(delivery, event, int(time.time()), settings.site_url, encode_data(data))
    body = render(body, chosen)
    headers = sign_headers(body, delivery_id=delivery, event=event, secrets=secrets)
    return Trial(delivery, chosen, body, post(url, body, headers, settings))


@dataclass(frozen=True)
class StyleReport:
    """What the probe deliveries got, per style."""

    statuses: dict[BodyStyle, int | None]

    @property
    def verified(self) -> list[BodyStyle]:
        return [s for s, status in self.statuses.items() if status and 200 <= status < 300]

    @property
    def tells(self) -> bool:
        """True when every answer was a 2xx or a 401: a verdict about signatures."""
        return all(s is not None and (200 <= s < 300 or s == 401) for s in self.statuses.values())

    def text(self) -> str:
        got = ", ".join(f"{s}: {status or 'no answer'}" for s, status in self.statuses.items())
        if not self.tells:
            return f"the receiver's answers do not tell which body style it verifies ({got})"
        if len(self.verified) == len(self.statuses):
            return f"the receiver verifies both body styles ({got})"
        if not self.verified:
            return (
                f"the receiver verifies neither body style ({got}): the secrets differ, "
                "or it signs something else"
            )
        return f"the receiver verifies the {self.verified[0]} body style only ({got})"

    def fix(self, url: str) -> str:
        """What to run when exactly one style verified, else ""."""
        if not self.tells or len(self.verified) != 1:
            return ""
        style = self.verified[0]
        return (
            f"shahihooks endpoints add {url} --body-style {style} "
            f"(or SHAHIHOOKS_BODY_STYLE={style} for SHAHIHOOKS_URLS)"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "statuses": {str(s): status for s, status in self.statuses.items()},
            "verified": [str(s) for s in self.verified],
            "tells": self.tells,
        }


def which_style(url: str, event: str, secrets: Secrets, settings: Settings) -> StyleReport:
    """Send the probe body in each style; the report says which ones the receiver verified."""
    statuses = {
        style: send_test(url, event, secrets, settings, style, PROBE_DATA).response.status
        for style in BodyStyle
    }
    return StyleReport(statuses)

"""The command group every command runs in (errors in one line), and what commands share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from shahihooks.bodystyle import BodyStyle
from shahihooks.connections import OUTAGES, full_message
from shahihooks.errors import ShahihooksError
from shahihooks.safety import redact_url
from shahihooks.settings import current
from shahihooks.terminal import printable


class Commands(click.Group):
    """A command group whose commands fail in one line: a shahihooks error, or Redis or the
    broker unreachable, is printed as `Error: ...` with exit status 1, never a traceback.
    Every error message is made printable (it may quote a receiver's answer)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ShahihooksError as exc:
            raise click.ClickException(printable(str(exc))) from None
        except OUTAGES as exc:
            raise click.ClickException(printable(_unreachable(exc))) from None
        except click.UsageError:
            raise  # about the command line itself
        except click.ClickException as exc:
            raise click.ClickException(printable(exc.format_message())) from None


def _unreachable(exc: BaseException) -> str:
    import redis

    detail = str(exc).strip().rstrip(".") or type(exc).__name__
    try:
        settings = current()
    except ShahihooksError:
        return f"Redis or the broker is unreachable ({detail})"
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return full_message(settings.redis_url)
    if isinstance(exc, redis.RedisError):
        what, url, setting = "Redis", settings.redis_url, "SHAHIHOOKS_REDIS_URL"
    else:
        what, url, setting = "the broker", settings.broker_url, "SHAHIHOOKS_BROKER_URL"
    return f"{what} at {redact_url(url)} is unreachable ({detail}): start it, or fix {setting}"


BODY_STYLES = click.Choice([s.value for s in BodyStyle], case_sensitive=False)


def duration(text: str | None) -> float | None:
    """A period option (90m, 24h, 7d...) in seconds; None if it is not given."""
    from shahihooks.stats import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def without_options(args: Sequence[str], names: Sequence[str]) -> list[str]:
    """`args` without the options `names` and their values (`--name value`, `--name=value`)."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not arg.startswith(tuple(f"{name}=" for name in names)):
            out.append(arg)
    return out

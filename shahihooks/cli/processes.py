"""The long-running commands: `worker`, `flower` and `dashboard`."""

from __future__ import annotations

import os
import sys

import click

from shahihooks.settings import current

DEFAULT_WORKER_CONCURRENCY = 16


def default_processes() -> int:
    """One worker process per core: the fastest setup measured (docs/benchmarks.md)."""
    return max(1, min(os.cpu_count() or 1, 256))


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option(
    "--processes",
    default=default_processes,
    show_default="one per core",
    type=click.IntRange(1, 256),
    help="Worker processes to run (one per core is the measured best).",
)
@click.pass_context
def worker(ctx: click.Context, processes: int) -> None:
    """Start Celery workers with the recommended pool and settings: one process per core,
    threads, 16 each.

    Extra options go to `celery worker` (e.g. --concurrency 32, -E for Flower events).

    \b
    Examples:
      shahihooks worker --loglevel INFO   # one process per core
      shahihooks worker --processes 1     # one process (a container scaled by its count)
    """
    from shahihooks.app import app
    from shahihooks.cli.supervise import supervise
    from shahihooks.worker import check_worker

    settings = current()
    check_worker(settings)
    extra = list(ctx.args)
    pool = _pool(extra)
    pool_given = pool is not None
    if pool not in (None, "threads") and (
        ctx.get_parameter_source("processes") is click.core.ParameterSource.DEFAULT
    ):
        processes = 1  # prefork makes its own children: not one such worker per core
    if processes > 1:
        sys.exit(supervise(processes, extra))
    argv = ["worker", "-Q", settings.queue]
    if not pool_given:
        argv += ["--pool", "threads"]
    if not any(a.startswith(("--concurrency", "-c")) for a in extra):
        argv += ["--concurrency", str(DEFAULT_WORKER_CONCURRENCY)]
    app.worker_main(argv + extra)


# Flower's task list: the delivery (event → URL, attempt) is the args column (Makefile too)
FLOWER_COLUMNS = "name,uuid,state,args,exception,retries,received,runtime,worker"


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def flower(ctx: click.Context) -> None:
    """Start Flower on this configuration's broker, showing each delivery in its task list.

    The same as `celery -A shahihooks.app flower`, with the settings of the command line it
    runs from: `python manage.py shahihooks flower` uses a Django project's SHAHIHOOKS dict,
    `flask --app APP shahihooks flower` a Flask app's. Extra options go to Flower; give it a
    login (FLOWER_BASIC_AUTH=user:password or --basic_auth), and start workers with -E.

    \b
    Example:
      FLOWER_BASIC_AUTH=admin:choose-one shahihooks flower --address=127.0.0.1 --port=5555
    """
    from shahihooks.app import app

    current()  # a bad configuration is said here, in one line
    extra = list(ctx.args)
    if not any(a.startswith("--tasks_columns") for a in extra):
        extra.append(f"--tasks_columns={FLOWER_COLUMNS}")
    sys.exit(app.start(["flower", *extra]) or 0)


def _pool(extra: list[str]) -> str | None:
    """The pool named among celery's options (`--pool X`, `--pool=X`, `-P X`, `-PX`)."""
    for i, arg in enumerate(extra):
        if arg in ("--pool", "-P"):
            return extra[i + 1] if i + 1 < len(extra) else ""
        if arg.startswith("--pool="):
            return arg.split("=", 1)[1]
        if arg.startswith("-P"):
            return arg[2:]
    return None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", default=8808, show_default=True, type=int, help="Port (0: any free).")
@click.option(
    "--refresh", default=10, show_default=True, type=click.IntRange(0), help="Page reload, s."
)
def dashboard(host: str, port: int, refresh: int) -> None:
    """A web dashboard at / and Prometheus metrics at /metrics, for the whole deployment.

    Endpoints and their state, charts of the last hours, dead letters with replay, the
    event catalogue. Basic auth from SHAHIHOOKS_DASHBOARD_AUTH=user:password; without it,
    it serves on a loopback address only.

    \b
    Examples:
      shahihooks dashboard
      SHAHIHOOKS_DASHBOARD_AUTH=ops:s3cret shahihooks dashboard --host 0.0.0.0
    """
    from shahihooks.dashboard import serve

    try:
        server = serve(current(), host, port, refresh)
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from None
    bound = server.server_address[1]
    click.echo(f"dashboard on http://{host}:{bound}/ (metrics: /metrics)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

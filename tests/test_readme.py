"""The README as a newcomer reads it: its quick start runs word for word in a fresh virtual
environment and delivers a signed webhook to the local receiver; the wheel it names is the
one `pip wheel` builds; every other shell block is marked `# example`; every `shahihooks`
command and option it names exists; every link into docs/ leads somewhere."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import click
import pytest

from shahihooks.cli import main
from tests.conftest import REDIS_URL, clean_env, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SH_BLOCK = re.compile(r"^ *```sh\n(.*?)^ *```", re.S | re.M)


def quick_start() -> str:
    found = SH_BLOCK.search(README, README.index("## Quick start"))
    assert found
    return found.group(1)


def source_tree(into: Path) -> Path:
    """The repository's tracked files as they are in this worktree (a fresh clone's)."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (ROOT / name).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, into / name)
    return into


@pytest.mark.timeout(900)
def test_the_quick_start_runs_word_for_word_in_a_fresh_venv(
    tmp_path: Path, redis_client: Any
) -> None:
    """The block as written, in a copy of the repository, with bash; only the port (8000 may
    be taken here) and, through the environment, this run's Redis database and key prefix
    differ. It installs with pip from the index (or pip's cache), then must deliver."""
    block = quick_start()
    assert "pip install ." in block
    port = free_port()
    script = "set -e\n" + block.replace("8000", str(port)) + "wait\n"
    prefix = f"quickstart{uuid.uuid4().hex[:8]}"
    system_path = os.pathsep.join(
        p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != Path(sys.executable).parent
    )
    env = clean_env(
        PATH=system_path,  # not this test's venv: the block makes and activates its own
        SHAHIHOOKS_REDIS_URL=REDIS_URL,
        SHAHIHOOKS_PREFIX=prefix,
        SHAHIHOOKS_QUEUE=prefix,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    env.pop("VIRTUAL_ENV", None)
    src = source_tree(tmp_path / "shahihooks")
    out = tmp_path / "out.txt"
    with open(out, "wb") as sink:
        shell = subprocess.Popen(
            ["bash", "-c", script],
            cwd=src,
            stdout=sink,
            stderr=sink,
            env=env,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: "✓ ticket.created" in out.read_text() or shell.poll() is not None,
            800,
            "the delivery, or the block failing",
        )
        text = out.read_text()
        assert "[1] ✓ ticket.created" in text, text[-4000:]
        assert (src / ".venv" / "bin" / "shahihooks").exists(), "installed in the fresh venv"
        assert "sent the example data of ticket.created" in text
        assert "queued" in text
    finally:
        os.killpg(shell.pid, signal.SIGTERM)
        shell.wait(timeout=60)
        names = list(redis_client.scan_iter(match=f"{prefix}*", count=1000))
        if names:
            redis_client.delete(*names)


@pytest.mark.timeout(600)
def test_the_wheel_the_readme_names_is_the_one_pip_builds(tmp_path: Path) -> None:
    found = re.search(r"`(pip wheel [^`]+)`.*?`(dist/[^`]+\.whl)`", README, re.S)
    assert found, "the README says how to build a wheel"
    command, wheel = found.groups()
    src = source_tree(tmp_path / "src")
    built = subprocess.run(
        [sys.executable, "-m", *command.split()],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert (src / wheel).is_file(), sorted(p.name for p in (src / "dist").iterdir())


def test_every_other_shell_block_is_marked_as_an_example() -> None:
    blocks = [m.group(1) for m in SH_BLOCK.finditer(README)]
    run = [b for b in blocks if not b.lstrip().startswith("# example")]
    # the quick start (above) and the two commands: `make demo` runs scripts/demo.py (tests/
    # test_packaging.py runs it), `make test` is this suite
    assert run == [quick_start(), run[1]], run
    assert run[1].split("\n")[0].startswith("make demo")
    assert run[1].split("\n")[1].startswith("make test")
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: .*\n\t\$\(BIN\)/python scripts/demo.py$", makefile, re.M)
    assert re.search(r"^test: .*\n\t\$\(BIN\)/python -m pytest$", makefile, re.M)


def _code(text: str) -> list[str]:
    """The inline code spans and shell-block lines of `text` (HTML comments left out)."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    lines = [line for m in SH_BLOCK.finditer(text) for line in m.group(1).splitlines()]
    prose = re.sub(r"^ *```.*?^ *```", "", text, flags=re.S | re.M)
    return lines + [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]


def _named_commands(text: str) -> list[list[str]]:
    """Each `shahihooks ...` named, as its words; `manage.py shahihooks` marked "django"."""
    found = []
    for code in _code(text):
        for m in re.finditer(r"(manage\.py)?(?:^|[\s(])shahihooks((?: +[^\s#]+)+)", code):
            words = m.group(2).replace("\\|", "|").split()  # `\|` in a table cell is `|`
            found.append((["django"] if m.group(1) else []) + words)
    return found


def _check(words: list[str]) -> None:
    command: click.Command = main
    if words and words[0] == "django":  # python manage.py shahihooks: one command more
        from shahihooks.contrib.django.management.commands.shahihooks import commands

        command, words = commands, words[1:]
    for word in words:
        word = word.strip("[]…,;")
        if isinstance(command, click.Group):
            if word.startswith("-") or not word:
                continue
            names = word.split("|")
            for name in names:
                assert name in command.commands, f"no command {name!r} ({' '.join(words)})"
            command = command.commands[names[0]]
        elif word.startswith("--") and not command.context_settings.get("allow_extra_args"):
            for option in word.split("|"):
                option = option.split("=")[0].strip("[]")
                if option.startswith("--"):
                    known = {o for p in command.params for o in p.opts + p.secondary_opts}
                    assert option in known, f"{command.name} has no {option} ({' '.join(words)})"


def test_every_shahihooks_command_and_option_the_readme_names_exists() -> None:
    named = _named_commands(README)
    assert len(named) > 30, "the README names commands"
    for words in named:
        _check(words)
    with pytest.raises(AssertionError, match="no command 'frobnicate'"):
        _check(["frobnicate"])
    with pytest.raises(AssertionError, match="has no --nope"):
        _check(["listen", "--nope"])


def test_every_link_into_the_repository_leads_somewhere() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            assert file.is_file(), f"{doc.name}: {target}"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", file.read_text(), re.M)
                slugs = {_slug(h) for h in headings}
                assert anchor in slugs, f"{doc.name}: {target} (no such heading)"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")

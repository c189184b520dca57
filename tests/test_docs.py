"""The README and docs/*.md stay a working reference: the README is short and links the docs, every relative
link resolves, every `offline-mbrl ...` line in a code block names a real subcommand and only its real
options (checked against the CLI by introspection: nothing is run), and every `python benchmarks/...`
script and `examples/...` path they mention exists.

A code-block line that is not meant to be a real command carries the marker `# docs: unchecked`."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
IDS = [p.relative_to(ROOT).as_posix() for p in PAGES]

MAX_README_LINES = 300
UNCHECKED = "# docs: unchecked"
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console", "text"}  # fenced blocks whose lines may be commands
CONTROL = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1"}  # where one command ends
FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCRIPT = re.compile(r"\b(?:python3?|bash)\s+(benchmarks/[\w./-]+\.(?:py|sh))\b")
EXAMPLE = re.compile(r"\bexamples/[\w./-]*")
ELSEWHERE = re.compile(r"[\w.-]+/[\w.-]+@[0-9a-f]{7,40}\s+\S+")  # owner/repo@commit path: another repository
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
COMMENT = re.compile(r"(^|\s)#(\s.*)?$")  # a shell comment: `#` after a blank, then a blank or the end


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def blocks(path: Path) -> Iterator[tuple[str, list[tuple[int, str]]]]:
    """Every fenced code block of a page: its info string and its (line number, text) lines."""
    info, body, inside = "", [], False
    for n, line in enumerate(path.read_text().splitlines(), 1):
        fence = FENCE.match(line)
        if fence and not inside:
            info, body, inside = fence.group(2).lower(), [], True
        elif fence and inside:
            yield info, body
            inside = False
        elif inside:
            body.append((n, line))


def prose(path: Path) -> list[tuple[int, str]]:
    """The page's lines outside fenced code blocks."""
    out, inside = [], False
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if FENCE.match(line):
            inside = not inside
        elif not inside:
            out.append((n, line))
    return out


def logical_lines(body: list[tuple[int, str]]) -> Iterator[tuple[int, str, bool]]:
    """A block's commands, one per item, as (first line, text without comments, marked unchecked):
    backslash continuations joined, and the indented lines under an `offline-mbrl` line (the usage style,
    `[--option ...]` on the next line) joined to it."""
    current: list[Any] | None = None  # [line, text, unchecked]
    continued = False
    for n, line in body:
        unchecked = UNCHECKED in line
        text = COMMENT.sub("", line).rstrip()
        under_command = current is not None and str(current[1]).startswith("offline-mbrl")
        if current is not None and (continued or (line[:1].isspace() and under_command)):
            current[1] = current[1].removesuffix("\\").rstrip() + " " + text.strip()
            current[2] = current[2] or unchecked
        else:
            if current is not None:
                yield current[0], current[1], current[2]
            current = [n, text.strip().removeprefix("$ "), unchecked]
        continued = text.endswith("\\")
    if current is not None:
        yield current[0], current[1], current[2]


def commands(words: list[str]) -> Iterator[list[str]]:
    """The `offline-mbrl` commands of a tokenised shell line, split at `|`, `&&`, `;`, `>` (a `|` inside a
    usage line's `[...]` is an alternative, not a pipe), leading VAR=value assignments dropped."""
    segment: list[str] = []
    depth = 0
    for word in [*words, "&&"]:
        if word in CONTROL and depth <= 0:
            while segment and ENV_ASSIGNMENT.match(segment[0]):
                segment.pop(0)
            if segment and segment[0] == "offline-mbrl":
                yield segment[1:]
            segment, depth = [], 0
            continue
        depth += word.count("[") - word.count("]")
        segment.append(word)


def cli() -> Any:
    from offline_mbrl.cli.main import app

    return typer.main.get_command(app)


def problems_of(words: list[str], root: Any) -> list[str]:
    """What is wrong with `offline-mbrl WORDS`: an unknown subcommand or an option its command lacks."""
    command, path = root, ["offline-mbrl"]
    rest = list(words)
    while rest and getattr(command, "commands", None):
        word = rest[0]
        if word.startswith(("-", "[")):
            break
        if word not in command.commands:
            return [f"unknown subcommand {word!r} of `{' '.join(path)}`"]
        command, path, rest = command.commands[word], [*path, word], rest[1:]
    known = {"--help"} | {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    found = []
    for word in rest:
        for part in word.split("|"):
            option = part.strip("[]{}(),").split("=", 1)[0]
            if option.startswith("--") and len(option) > 2 and option not in known:
                found.append(f"unknown option {option} for `{' '.join(path)}`")
    return found


def shell_commands(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line, text, words after `offline-mbrl`) of every checked command in the page's code blocks."""
    for info, body in blocks(path):
        if info not in SHELL_BLOCKS:
            continue
        for n, text, unchecked in logical_lines(body):
            if unchecked or "offline-mbrl" not in text:
                continue
            try:
                words = shlex.split(text)
            except ValueError as e:
                raise AssertionError(f"{rel(path)}:{n}: cannot split `{text}` as shell words: {e}") from e
            for words_after in commands(words):
                yield n, text, words_after


def test_readme_is_short_and_links_the_docs():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; at most {MAX_README_LINES}"
    linked = {
        target.split("#")[0]
        for _, line in prose(README)
        for target in LINK.findall(line)
        if re.fullmatch(r"docs/[\w.-]+\.md", target.split("#")[0])
    }
    assert len(linked) >= 4, f"README.md links only {sorted(linked)} of docs/*.md; it should link at least 4"
    for target in linked:
        assert (ROOT / target).is_file(), f"README.md links {target}, which does not exist"


def test_the_readme_test_command_is_what_ci_runs():
    steps = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    command = [ln for ln in steps if ln and not ln.startswith("#") and not ln.startswith(("set ", "cd "))][-1]
    assert command in README.read_text(), f"README.md lacks .ci/run's test command verbatim: {command}"


def github_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens, a
    repeated heading numbered."""
    seen: dict[str, int] = {}
    anchors = set()
    for _, line in prose(path):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1))  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", text.replace("`", "").strip().lower()).replace(" ", "-")
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_every_relative_link_resolves(page):
    broken = []
    for n, line in prose(page):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            resolved = (page.parent / file).resolve() if file else page
            if not resolved.exists():
                broken.append(f"{rel(page)}:{n}: link to {target}: no such file {file}")
            elif anchor and resolved.suffix == ".md" and anchor not in github_anchors(resolved):
                broken.append(
                    f"{rel(page)}:{n}: link to {target}: {file or rel(page)} has no heading #{anchor}"
                )
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_every_offline_mbrl_command_names_real_subcommands_and_options(page):
    root = cli()
    bad = [
        f"{rel(page)}:{n}: {problem} in `{text}`"
        for n, text, words in shell_commands(page)
        for problem in problems_of(words, root)
    ]
    assert not bad, "\n".join(bad)


def test_the_command_check_sees_the_readme_commands_and_catches_a_wrong_one():
    root = cli()
    checked = list(shell_commands(README))
    assert len(checked) >= 10, f"only {len(checked)} offline-mbrl commands found in README.md's code blocks"
    assert problems_of(["train", "--algo", "mopo", "--no-such-option", "1"], root) == [
        "unknown option --no-such-option for `offline-mbrl train`"
    ]
    assert problems_of(["no-such-command"], root) == [
        "unknown subcommand 'no-such-command' of `offline-mbrl`"
    ]
    assert problems_of(["sweep", "show", "STUDY", "--storage", "URL", "--help"], root) == []
    words = shlex.split("offline-mbrl config --algo A [--dataset NAME | --task T] --nope | tee x --nor")
    assert [problems_of(w, root) for w in commands(words)] == [
        ["unknown option --nope for `offline-mbrl config`"]
    ]


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_every_benchmark_script_and_example_path_exists(page):
    text = page.read_text().splitlines()
    missing = []
    for n, line in enumerate(text, 1):
        line = ELSEWHERE.sub("", line)
        for script in SCRIPT.findall(line):
            if not (ROOT / script).is_file():
                missing.append(f"{rel(page)}:{n}: {script} does not exist")
        for example in EXAMPLE.findall(line):
            example = example.rstrip(".,;:")
            if not (ROOT / example).exists():
                missing.append(f"{rel(page)}:{n}: {example} does not exist")
    assert not missing, "\n".join(missing)

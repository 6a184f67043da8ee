"""Every command in README.md and docs/*.md runs as written, and every relative link leads somewhere.

The fenced shell blocks (```bash, ```sh, ```shell, ```console) of the pages are split into commands (backslash
continuations joined; ``&&``, ``||``, ``;`` and ``|`` separate commands; a leading ``$ `` prompt and ``NAME=value``
assignments are dropped). Each ``segkit <subcommand> ...``, ``python -m segkit.cli <subcommand> ...`` and
``tools/<name>.py ...`` invocation (after ``python`` or ``torchrun``) is checked against the subcommand's own argparse
parser, built with ``build_parser()`` from ``segkit.cli.COMMANDS`` (no subprocess, no model): the subcommand exists,
every ``--flag`` is one of its options spelled in full, ``--config NAME`` names a shipped config or an existing path, and
the whole command line parses. README.md stays short and links every docs page.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from segkit.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
CONFIG_DIR = ROOT / "segkit" / "configs"
SHELL_LANGS = {"bash", "sh", "shell", "console"}
README_MAX_LINES = 260
SEPARATORS = {";", "&&", "||", "|", "&", ";;"}
WRAPPERS = {"time", "env", "nohup", "sudo", "exec"}
TOP_LEVEL_OPTIONS = {"-h", "--help", "-V", "--version"}  # segkit --help: the subcommands; --version
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})\s*(?P<info>.*)$")
LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
REF_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+(?P<target>\S+)", re.MULTILINE)
INLINE_CODE = re.compile(r"`+[^`]*`+")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # line of the opening fence (1-based)
    lang: str
    text: str


@dataclass(frozen=True)
class Command:
    where: str  # "docs/x.md:12"
    subcommand: str | None  # None: tools/<name>.py that maps to no subcommand
    args: tuple[str, ...]
    source: str  # the words before the arguments: "segkit", "python -m segkit.cli", "python tools/test.py", ...


# --- extraction -----------------------------------------------------------------------------------------------------


def fenced_blocks(text: str, page: Path = README) -> list[Block]:
    """The fenced code blocks of a Markdown text, with their info string's first word as the language."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, lang = match["fence"], (match["info"].split() or [""])[0].lower()
        start, body = i, []
        i += 1
        while i < len(lines):
            close = FENCE.match(lines[i])
            if close and close["fence"][0] == fence[0] and len(close["fence"]) >= len(fence) and not close["info"]:
                break
            body.append(lines[i])
            i += 1
        blocks.append(Block(page, start + 1, lang, "\n".join(body)))
        i += 1
    return blocks


def shell_lines(block: Block) -> list[tuple[int, str]]:
    """``(line number, command line)``: continuations joined, ``$ `` prompts dropped; in a ``console`` block only the
    prompted lines are commands (the others are output)."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    first = 0
    for offset, line in enumerate(block.text.splitlines()):
        number = block.line + 1 + offset
        if not pending:
            stripped = line.strip()
            if stripped.startswith("$ "):
                line = stripped[2:]
            elif block.lang == "console":
                continue
            first = number
        if line.rstrip().endswith("\\"):
            pending.append(line.rstrip()[:-1])
            continue
        pending.append(line)
        out.append((first, " ".join(part.strip() for part in pending)))
        pending = []
    if pending:
        out.append((first, " ".join(part.strip() for part in pending)))
    return out


def split_commands(line: str) -> list[list[str]]:
    """Shell words of each simple command on a line (comments dropped, ``&&``/``;``/``|`` separate commands)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [words for words in commands if words]


@cache
def tool_subcommands() -> dict[str, str | None]:
    """``tools/<name>.py`` -> the subcommand whose module it runs (``None`` when it runs none)."""
    by_module = {module: name for name, (module, _) in COMMANDS.items()}
    mapping: dict[str, str | None] = {}
    for path in sorted((ROOT / "tools").glob("*.py")):
        found = re.search(r"^from (segkit\.cli\.\w+) import main$", path.read_text(), re.MULTILINE)
        mapping[path.stem] = by_module.get(found[1]) if found else None
    return mapping


def invocation(words: list[str]) -> tuple[str, str | None, list[str]] | None:
    """``(source, subcommand, args)`` when ``words`` runs a segkit command, else ``None``."""
    while words and (ENV_ASSIGNMENT.match(words[0]) or words[0] in WRAPPERS):
        words = words[1:]
    if not words:
        return None
    if Path(words[0]).name == "segkit":
        return (words[0], words[1] if len(words) > 1 else "", words[2:])
    for i, word in enumerate(words):
        if word == "-m" and i + 1 < len(words) and words[i + 1] == "segkit.cli":
            rest = words[i + 2 :]
            return (" ".join(words[: i + 2]), rest[0] if rest else "", rest[1:])
        match = re.fullmatch(r"(?:\./)?tools/(?P<name>[\w-]+)\.py", word)
        if match:
            return (" ".join(words[: i + 1]), tool_subcommands().get(match["name"]), words[i + 1 :])
    return None


def commands_in(text: str, page: Path = README) -> list[Command]:
    """Every segkit invocation in the shell blocks of a Markdown text."""
    found: list[Command] = []
    for block in fenced_blocks(text, page):
        if block.lang not in SHELL_LANGS:
            continue
        for number, line in shell_lines(block):
            for words in split_commands(line):
                hit = invocation(words)
                if hit:
                    source, sub, args = hit
                    found.append(Command(f"{_rel(page)}:{number}", sub, tuple(args), source))
    return found


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


@cache
def all_commands() -> tuple[Command, ...]:
    return tuple(cmd for page in PAGES for cmd in commands_in(page.read_text(), page))


# --- checks ---------------------------------------------------------------------------------------------------------


@cache
def parser_of(subcommand: str) -> argparse.ArgumentParser:
    return importlib.import_module(COMMANDS[subcommand][0]).build_parser()


def _options(parser: argparse.ArgumentParser, args: tuple[str, ...]) -> tuple[set[str], list[str]]:
    """The option strings valid for ``args`` (descending into a sub-parser, as ``prepare-data voc``), and problems."""
    options = {s for action in parser._actions for s in action.option_strings}
    problems: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = next((a for a in args if not a.startswith("-") and a in action.choices), None)
            if chosen is None:
                if not {"-h", "--help"} & set(args):
                    problems.append(f"needs one of {', '.join(action.choices)}")
                continue
            rest = tuple(args[args.index(chosen) + 1 :])
            more, more_problems = _options(action.choices[chosen], rest)
            options |= more
            problems += more_problems
    return options, problems


def config_exists(value: str) -> bool:
    if (CONFIG_DIR / f"{value}.yaml").is_file():
        return True
    return (ROOT / value).exists() or (CONFIG_DIR / value).is_file()


def problems_of(cmd: Command) -> list[str]:
    """What is wrong with one command (empty: it runs as written, as far as its parser can tell)."""
    if cmd.subcommand is None:
        return [f"{cmd.source} runs no segkit subcommand (tools/<name>.py must be a shim over segkit.cli.<module>)"]
    if cmd.subcommand in TOP_LEVEL_OPTIONS or (cmd.subcommand == "" and cmd.source.endswith("segkit")):
        return [] if not cmd.args else [f"segkit {cmd.subcommand} takes nothing after it"]
    if cmd.subcommand not in COMMANDS:
        return [f"unknown subcommand {cmd.subcommand!r}; choose one of {', '.join(COMMANDS)}"]
    parser = parser_of(cmd.subcommand)
    options, problems = _options(parser, cmd.args)
    args = list(cmd.args)
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "..." or arg.startswith("[-") or arg.startswith("<"):
            problems.append(f"placeholder {arg!r}: write a command that runs as written")
        if re.match(r"^--?[A-Za-z]", arg):
            flag = arg.split("=", 1)[0]
            if flag not in options:
                close = sorted(o for o in options if o.startswith(flag))
                hint = f" (spell it in full: {', '.join(close)})" if close else ""
                problems.append(f"{flag} is no option of segkit {cmd.subcommand}{hint}")
        if arg.split("=", 1)[0] == "--config":
            value = arg.split("=", 1)[1] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            if not config_exists(value):
                problems.append(f"--config {value!r} is no shipped config (segkit/configs/) and no existing path")
    if not problems and not {"-h", "--help"} & set(args):
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                parser.parse_args(args)
        except SystemExit as exc:
            if exc.code:
                problems.append(f"does not parse: {err.getvalue().strip().splitlines()[-1]}")
    return problems


def links_in(page: Path) -> list[str]:
    """Link targets of a page outside code blocks and inline code."""
    text = page.read_text()
    for block in fenced_blocks(text, page):
        text = text.replace(block.text, "")
    text = INLINE_CODE.sub("", text)
    return [m["target"] for m in LINK.finditer(text)] + [m["target"] for m in REF_LINK.finditer(text)]


def github_anchors(page: Path) -> set[str]:
    """The anchors GitHub makes of a page's headings (lower case, punctuation dropped, spaces to hyphens)."""
    text = page.read_text()
    for block in fenced_blocks(text, page):
        text = text.replace(block.text, "")
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for match in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", match[1].strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def link_problems(page: Path) -> list[str]:
    problems = []
    for target in links_in(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        path = (page.parent / path_part).resolve() if path_part else page
        if not path.exists():
            problems.append(f"{_rel(page)}: link {target!r} points at a missing file")
        elif anchor and path.suffix == ".md" and anchor not in github_anchors(path):
            problems.append(f"{_rel(page)}: link {target!r}: no heading with anchor #{anchor} in {_rel(path)}")
    return problems


# --- tests ----------------------------------------------------------------------------------------------------------

SAMPLE = """\
Some text with `segkit fake --nope` inline (not a command).

```bash
$ FOO=1 segkit train --config voc_mnv2_os16 \\
    --set train.lr=0.01 && python tools/test.py --checkpoint x.pth; echo done  # segkit infer --in a comment
torchrun --nproc_per_node 2 tools/train.py --config demo_mnv2_os16 | tee log.txt
```

```console
$ python -m segkit.cli complexity --table7
output line: segkit summary --not-a-command
```

```python
segkit.load_model("x.pth")
```
"""


def test_extractor_finds_known_commands():
    """The extractor sees what it must (so the checks below can fail) and nothing else."""
    found = [(c.subcommand, c.args, c.source) for c in commands_in(SAMPLE)]
    assert found == [
        ("train", ("--config", "voc_mnv2_os16", "--set", "train.lr=0.01"), "segkit"),
        ("test", ("--checkpoint", "x.pth"), "python tools/test.py"),
        ("train", ("--config", "demo_mnv2_os16"), "torchrun --nproc_per_node 2 tools/train.py"),
        ("complexity", ("--table7",), "python -m segkit.cli"),
    ]
    assert [c.where for c in commands_in(SAMPLE)][:2] == ["README.md:4", "README.md:4"]


def test_checks_catch_mistakes():
    def check(sub: str | None, *args: str) -> list[str]:
        return problems_of(Command("x", sub, args, "segkit"))

    assert check("train", "--config", "voc_mnv2_os16") == []
    assert check("prepare-data", "verify", "--root", "data", "--splits", "train", "val") == []
    assert any("no option" in p for p in check("train", "--config", "voc_mnv2_os16", "--no-such-flag"))
    assert any("spell it in full" in p for p in check("train", "--config", "voc_mnv2_os16", "--print"))
    assert any("no shipped config" in p for p in check("train", "--config", "no_such_config"))
    assert any("unknown subcommand" in p for p in check("trian", "--config", "voc_mnv2_os16"))
    assert any("does not parse" in p for p in check("export", "--checkpoint", "x.pth"))  # --out is required
    assert any("no option" in p for p in check("prepare-data", "voc", "--sbd-dir", "x"))  # an option of sbd only
    assert any("needs one of" in p for p in check("prepare-data", "--root", "data"))
    assert any("placeholder" in p for p in check("quantize", "...", "--format", "onnx"))
    assert check(None, "--config", "x")
    assert check("--help") == [] and check("--version") == []


def test_tools_map_to_subcommands():
    mapping = tool_subcommands()
    assert mapping["train"] == "train" and mapping["convert_tflite"] == "convert"
    assert mapping["prepare_data"] == "prepare-data"
    assert all(sub in COMMANDS for sub in mapping.values()), mapping


def test_pages_hold_commands():
    """The real pages are read: README and docs name every subcommand at least once."""
    commands = all_commands()
    assert any(c.where.startswith("README.md:") and c.subcommand == "train" for c in commands)
    assert set(COMMANDS) <= {c.subcommand for c in commands}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: _rel(p))
def test_commands_run_as_written(page: Path):
    problems = [
        f"{cmd.where}: {cmd.source} {cmd.subcommand or ''} {' '.join(cmd.args)}\n    -> {problem}"
        for cmd in commands_in(page.read_text(), page)
        for problem in problems_of(cmd)
    ]
    assert not problems, "\n".join(problems)


def test_docs_spell_commands_segkit():
    """README says once that ``python tools/<cmd>.py`` is ``segkit <cmd>``; docs/ spell commands ``segkit <cmd>``
    (``torchrun`` needs a script file, so ``torchrun ... tools/train.py`` stays)."""
    python_tools = [
        f"{c.where}: {c.source}"
        for c in all_commands()
        if c.where.startswith("docs/") and re.match(r"^(\S*/)?python[\d.]*\s.*tools/", c.source)
    ]
    assert not python_tools, f"write `segkit <cmd>` instead of `python tools/<cmd>.py`: {python_tools}"


def test_readme_is_short_and_indexes_docs():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    targets = {(README.parent / t.partition("#")[0]).resolve() for t in links_in(README)}
    missing = [_rel(page) for page in DOCS if page.resolve() not in targets]
    assert not missing, f"README.md does not link {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: _rel(p))
def test_relative_links_exist(page: Path):
    problems = link_problems(page)
    assert not problems, "\n".join(problems)


def test_link_check_can_fail(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](missing.md) [bad anchor](#nope) `[code](x.md)`\n")
    problems = link_problems(page)
    assert len(problems) == 2 and "missing.md" in problems[0] and "#nope" in problems[1]

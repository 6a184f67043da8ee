"""Every option of every ``segkit`` subcommand says what it does: a non-empty help text in ``--help`` (subcommands of
``prepare-data`` included, and subcommands added later: the test walks COMMANDS)."""

from __future__ import annotations

import argparse
import importlib

import pytest

from segkit.cli import COMMANDS


def _parsers(parser: argparse.ArgumentParser, name: str) -> list[tuple[str, argparse.ArgumentParser]]:
    """``parser`` and its subcommands' parsers, each with the command line that reaches it."""
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found += _parsers(sub, f"{name} {sub_name}")
    return found


def _options_without_help(parser: argparse.ArgumentParser) -> list[str]:
    return [
        "/".join(action.option_strings) or action.dest
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and action.help != argparse.SUPPRESS
        and not (action.help or "").strip()
    ]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_has_a_help_text(name: str) -> None:
    parser = importlib.import_module(COMMANDS[name][0]).build_parser()
    missing = {where: bad for where, sub in _parsers(parser, f"segkit {name}") if (bad := _options_without_help(sub))}
    assert not missing, f"options without a help text: {missing}"


def test_the_check_finds_an_option_without_help() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documented", help="does something")
    parser.add_argument("--bare")
    sub = parser.add_subparsers().add_parser("child")
    sub.add_argument("--inner", help="")
    assert _options_without_help(parser) == ["--bare"]
    assert [_options_without_help(p) for _, p in _parsers(parser, "x")] == [["--bare"], ["--inner"]]

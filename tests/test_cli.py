"""The command line's shell: usage errors are one `error:` line with exit 2, and commands load
lazily, so `--help` and usage errors never import a model library (start-up time itself is
measured in `benchmarks/cli_startup.py`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmsrarec.cli import COMMANDS, TRAIN_COMMANDS, app, load_command
from mmsrarec.cli.common import run_guarded

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["recommend", "--user", "1", "--top", "0"], "Invalid value for '--top'"),
        (["recommend", "--user", "1", "--stage", "train"], "Invalid value for '--stage'"),
        (["recommend"], "`--user` / `--history`"),
        (["recommend", "--user", "1", "--history", "2"], "`--user` / `--history`"),
        (["evaluate", "--protocol", "nope"], "Invalid value for '--protocol'"),
        (["trace", "verify"], "Missing argument 'FILE'"),
        (["data", "prepare", "--bogus"], "No such option: --bogus"),
        (["nosuch"], "No such command 'nosuch'"),
    ],
)
def test_a_usage_error_is_one_line_with_exit_2(args: list[str], expected: str, capsys) -> None:
    assert run_guarded(app, args) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert expected.lower() in lines[0].lower() and "--help" in lines[0]
    assert captured.out == ""


def test_no_arguments_print_the_help(capsys) -> None:
    run_guarded(app, [])
    listing = capsys.readouterr()
    assert all(name in listing.out + listing.err for name in COMMANDS)


@pytest.mark.parametrize(
    ("table", "name"),
    [(COMMANDS, name) for name in COMMANDS] + [(TRAIN_COMMANDS, name) for name in TRAIN_COMMANDS],
)
def test_the_listed_help_is_the_command_s_own(table, name: str) -> None:
    command = load_command(name, table)
    first_paragraph = " ".join((command.help or "").split("\n\n")[0].split())
    assert first_paragraph == table[name][2]


def test_help_and_usage_errors_import_no_model_library() -> None:
    code = (
        "import json, sys\n"
        "from mmsrarec.cli import app\n"
        "from mmsrarec.cli.common import run_guarded\n"
        "codes = [run_guarded(app, a) for a in (['--help'], ['recommend', '--top', '0'],\n"
        "         ['evaluate', '--protocol', 'x'], ['serve', '--port', 'x'], ['chat', '--x'],\n"
        "         ['train', '--help'], ['train', 'llm-recommender', '--seeds', '0'])]\n"
        "heavy = ('torch', 'transformers', 'chromadb', 'langgraph', 'trl', 'fastapi')\n"
        "print(json.dumps([codes, [m for m in heavy if m in sys.modules]]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    codes, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    assert codes == [0, 2, 2, 2, 2, 0, 2] and heavy == []

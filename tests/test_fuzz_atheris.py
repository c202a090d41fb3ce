"""A short coverage-guided fuzzing run (atheris, tests/fuzz/parser_atheris.py) of the client-frame parser."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ_DIR = Path(__file__).parent / "fuzz"
HARNESS = FUZZ_DIR / "parser_atheris.py"
SEEDS = FUZZ_DIR / "corpus"
SECONDS = 8
# Only a backstop: at a few thousand inputs a second the time limit ends the run first.
MAX_RUNS = 1_000_000
MIN_RUNS = 1_000


def _files(directory: Path) -> set[str]:
    return {str(path.relative_to(directory)) for path in directory.rglob("*")}


@pytest.mark.slow
def test_parser_survives_a_short_atheris_run(tmp_path: Path) -> None:
    """About 15 s of fuzzing from the valid-op seeds executes real inputs, finds no crash, writes no file."""
    before = _files(FUZZ_DIR)
    new_inputs = tmp_path / "corpus"
    new_inputs.mkdir()
    # libFuzzer writes what it finds into the first corpus directory and crashes to -artifact_prefix:
    # both go to tmp_path, and the repository's seeds are only read.
    command = [
        sys.executable,
        str(HARNESS),
        f"-max_total_time={SECONDS}",
        f"-runs={MAX_RUNS}",
        f"-artifact_prefix={tmp_path}/",
        "-print_final_stats=1",
        str(new_inputs),
        str(SEEDS),
    ]
    env = os.environ | {"PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SECONDS * 4 + 30, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert not list(tmp_path.glob("crash-*")) and "Uncaught Python exception" not in output, output[-5000:]
    seeded = re.search(r"seed corpus: files: (\d+)", output)
    assert seeded and int(seeded.group(1)) >= len(list(SEEDS.iterdir())), output[-5000:]
    done = re.search(r"^Done (\d+) runs in \d+ second", output, re.MULTILINE)
    executed = re.search(r"stat::number_of_executed_units: (\d+)", output)
    assert done and executed, output[-5000:]
    assert int(done.group(1)) == int(executed.group(1)) >= MIN_RUNS
    assert _files(FUZZ_DIR) == before

"""A config mistake gets its one line before hill imports torch, Prefect or MLflow, so it costs
a fraction of a second, not the 10 s those imports take on a loaded machine.

Each command runs in a fresh interpreter (imports are per process) and reports which of the
heavy packages it had imported when it exited.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

COMMANDS = {
    "run": ["run"],
    "run --baseline": ["run", "--baseline"],
    "replay": ["replay", "somewhere"],
    "compare": ["compare"],
    "gate": ["gate", "--snapshot", "s.parquet"],
    "serve": ["serve", "--cron", "0 3 * * *"],
    "resume": ["resume", "r"],
    "deploy": ["deploy"],
    "study": ["study"],
    "gates serve": ["gates", "serve"],
}
HEAVY = ("torch", "prefect", "mlflow", "gradio", "dvc", "sklearn")


@pytest.mark.parametrize("command", list(COMMANDS), ids=list(COMMANDS))
def test_a_config_mistake_is_reported_before_the_heavy_imports(tmp_path, command):
    (tmp_path / "params.yaml").write_text("base: {sed: 4}\n")  # every command reads base
    args = COMMANDS[command]
    script = textwrap.dedent(f"""
        import sys
        from pipelines.cli import app
        try:
            app({args!r})
        except SystemExit as done:
            code = done.code
        print("exit", code, sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.stderr.strip().splitlines() == [
        "hill: unknown key base.sed (known: device, run_dir, seed)"
    ], done.stderr
    assert done.stdout.strip().splitlines()[-1] == "exit 2 []"

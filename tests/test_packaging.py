"""scnet installs as a wheel that carries its configs and sweeps (issue 11 item 6).

The slow test builds the wheel from a copy of the source, installs it into a fresh venv and
runs the demo and a sweep's dry run from an empty directory. The venv gets the wheel only
(``--no-deps``); its dependencies come from this environment's site-packages through a
``.pth`` path line, which (unlike ``--system-site-packages`` from a venv) does not activate
this checkout's editable install, so the installed ``scnet`` is really the wheel's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from scnet.cli.common import CONF_DIR
from scnet.shipped import REPO_ROOT, shipped_dir
from scnet.sweep.spec import SWEEPS_DIR


def test_checkout_uses_the_top_level_folders() -> None:
    """In a source checkout the one source of truth is conf/ and sweeps/ at the top."""
    assert CONF_DIR == REPO_ROOT / "conf" and SWEEPS_DIR == REPO_ROOT / "sweeps"


def test_environment_variable_wins(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCNET_CONF_DIR", str(tmp_path))
    assert shipped_dir("conf", "SCNET_CONF_DIR") == tmp_path


def _build_wheel(dest: Path) -> Path:
    """``pip wheel`` from a copy of the checkout (the shared tree stays free of build/)."""
    src = dest / "src"
    top = {".venv", ".git", "outputs", "build", "dist", "data", "wandb", "docs", "tests"}

    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder)
        return {
            n for n in names
            if (here == REPO_ROOT and n in top) or n == "__pycache__" or n.endswith(".egg-info")
        }  # fmt: skip

    shutil.copytree(REPO_ROOT, src, ignore=ignore)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(dest / "dist"), str(src)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (wheel,) = (dest / "dist").glob("scnet-*.whl")
    return wheel


@pytest.mark.slow  # a wheel build, a venv and a 1-epoch demo: ~1 min on 2 cores
def test_wheel_runs_from_an_empty_directory(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    for path in CONF_DIR.rglob("*.yaml"):
        if "local" not in path.relative_to(CONF_DIR).parts:
            assert f"scnet/conf/{path.relative_to(CONF_DIR)}" in names
    assert {f"scnet/sweeps/{p.name}" for p in SWEEPS_DIR.glob("*.yaml")} <= set(names)
    packages = {p.parent.relative_to(REPO_ROOT) for p in (REPO_ROOT / "scnet").rglob("__init__.py")}
    assert {f"{p}/__init__.py" for p in packages} <= set(names)

    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    site = Path(
        subprocess.check_output(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            text=True,
        ).strip()
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
         "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    bin_dir = venv / "bin"
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1",
           "PATH": f"{bin_dir}:{os.environ['PATH']}"}  # fmt: skip
    for var in ("PYTHONPATH", "SCNET_CONF_DIR", "SCNET_SWEEPS_DIR"):
        env.pop(var, None)
    where = subprocess.run([str(bin_dir / "python"), "-c", "import scnet; print(scnet.__file__)"],
                           cwd=empty, env=env, capture_output=True, text=True, check=True)  # fmt: skip
    assert where.stdout.startswith(str(site)), where.stdout  # the wheel's scnet, not the checkout
    run = subprocess.run(
        ["scnet-run", "experiment=demo", "depth=8", "trainer.max_epochs=1",
         "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
         "trainer.limit_test_batches=1", "logger=csv"],
        cwd=empty, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    (result,) = empty.glob("outputs/runs/*/*/result.json")
    assert json.loads(result.read_text())["status"] == "completed"
    dry = subprocess.run(["scnet-sweep", "table2", "--dry-run"], cwd=empty, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "trial-0000" in dry.stdout

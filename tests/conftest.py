"""Shared fixtures: the real packaged models, converted once per machine and reused across test runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]


def packaged_model_dir(key: str) -> Path:
    """The safetensors folder of a packaged model, built on first use.

    The workflow builds the same folders under ``resources/models``; tests reuse them when present so a
    machine converts each model once.
    """
    from masa.llm.packaged import PACKAGED_MODELS, convert_to_safetensors

    root = Path(os.environ.get("MASA_MODEL_DIR", REPO / "resources" / "models"))
    target = root / key
    if not (target / "config.json").is_file():
        convert_to_safetensors(PACKAGED_MODELS[key], target)
    return target


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    return packaged_model_dir("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def gemma_dir() -> Path:
    return packaged_model_dir("gemma3-270m")


# Fixtures that load a real packaged model, simulator, server or run: a test that uses one (directly, through
# another fixture, or as a parametrized fixture name) is marked `models`, so `pytest -m "not models"` is the
# fast unit run.
REAL_FIXTURES = frozenset(
    {
        "smollm2_dir",
        "gemma_dir",
        "tiny_local_run",
        "slurm_run",
        "vllm_report",
        "smollm2",
        "server_url",
        "games_dir",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        named = set(getattr(item, "fixturenames", ())) | {v for v in params.values() if isinstance(v, str)}
        if named & REAL_FIXTURES or item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.models)


SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2"]


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [*SNAKEMAKE, "--directory", str(workdir), *args]


def snakemake(workdir: Path, *args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_command(workdir, *args), capture_output=True, text=True, timeout=timeout)


def tiny_workdir(work: Path, model_dir: Path) -> Path:
    """A scratch working directory for the tiny DAG, as a user's clone would have it, with the converted
    model symlinked in (run it with ``--rerun-triggers mtime`` so the link counts as built)."""
    (work / "config").mkdir(parents=True)
    config = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())
    config["cache_dir"] = None  # every episode really played
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.copytree(REPO / "resources" / "skills", work / "resources" / "skills")
    (work / "resources" / "external").mkdir()
    shutil.copy(REPO / "tests" / "config" / "release-alfworld-bank.json", work / "resources" / "external")
    (work / "resources" / "models").mkdir()
    (work / "resources" / "models" / model_dir.name).symlink_to(model_dir)
    return work


# Seconds from the tiny run's start: it takes about 9 minutes alone on 2 cores, longer beside the other tests.
TINY_RUN_TIMEOUT = 1500


@dataclass
class TinyRun:
    """The tiny DAG's folder and, while this session runs it, its process (None: a finished run reused)."""

    work: Path
    process: subprocess.Popen | None = None
    started: float = field(default_factory=time.monotonic)

    def stop(self) -> None:
        """End the run and its jobs (its own process group)."""
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait()

    def finish(self) -> Path:
        """Wait for the run, at most TINY_RUN_TIMEOUT from its start; it must succeed, and is marked FINISHED."""
        if self.process is not None:
            try:
                left = TINY_RUN_TIMEOUT - (time.monotonic() - self.started)
                returncode = self.process.wait(timeout=max(left, 0))
            except subprocess.TimeoutExpired:
                self.stop()
                returncode = f"killed {TINY_RUN_TIMEOUT} s after its start"
            output = (self.work / "snakemake.out").read_text()
            assert returncode == 0, f"tiny run: {returncode}\n" + output[-6000:]
            (self.work / "FINISHED").write_text("the tiny DAG finished; tests/conftest.py reuses this run\n")
        return self.work


@pytest.fixture(scope="session", autouse=True)
def tiny_run_started(request, tmp_path_factory) -> Iterator[TinyRun | None]:
    """The tiny DAG, started in the background before the session's first test when a collected test reads
    it (``tiny_local_run``): on 2 cores the DAG leaves a core idle much of its time, and the other tests fill
    it. Its output goes to ``snakemake.out`` in its folder (``tail -f`` to watch it).

    With ``MASA_TINY_RUN`` set, the run lives in that folder and a finished one is reused: CI's cluster tests
    (``pytest -m cluster``, a second session) compare against the run of the README's test command.
    """
    if not any("tiny_local_run" in getattr(item, "fixturenames", ()) for item in request.session.items):
        yield None
        return
    shared = os.environ.get("MASA_TINY_RUN")
    if shared and (Path(shared) / "FINISHED").is_file():
        yield TinyRun(Path(shared))
        return
    if shared:
        shutil.rmtree(shared, ignore_errors=True)
        Path(shared).mkdir(parents=True)
    model_dir = request.getfixturevalue("smollm2_dir")
    work = tiny_workdir(Path(shared) if shared else tmp_path_factory.mktemp("run"), model_dir)
    with (work / "snakemake.out").open("w") as out:
        process = subprocess.Popen(
            snakemake_command(work, "--rerun-triggers", "mtime"),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its jobs are stopped with it
        )
    run = TinyRun(work, process)
    yield run
    if process.poll() is None:  # the session ended before a test waited for it (-x, a keyboard interrupt)
        run.stop()


@pytest.fixture(scope="session")
def tiny_local_run(tiny_run_started) -> Path:
    """The tiny DAG run once locally (``tiny_run_started``); the workflow test reads it and the SLURM test
    compares against it."""
    return tiny_run_started.finish()

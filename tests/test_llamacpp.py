"""The llamacpp backend with a real model and a real grammar: the packaged SmolLM2 GGUF, too small to write
JSON unaided (it validated in 12 of 146 teacher calls of a default run), answers in the schema's shape."""

from __future__ import annotations

import json

import jsonschema
import pytest

from masa.llm.base import Message
from masa.llm.llamacpp_backend import LlamaCppError, LlamaCppLLM, gguf_file
from masa.llm.packaged import PACKAGED_MODELS, locate_part
from masa.teacher.teachers import SKILLS_SCHEMA, TEACHER_ROLE, parse_skill_list

pytest.importorskip("llama_cpp", reason="llama_cpp is installed by setup.sh")
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def smollm2() -> LlamaCppLLM:
    (part,) = PACKAGED_MODELS["smollm2-135m-instruct"].parts  # one part: the GGUF file itself
    return LlamaCppLLM(name="teacher", path=str(locate_part(part)), threads=1, context=2048)


def test_a_tiny_model_under_the_skills_schema_replies_with_valid_skills(smollm2):
    prompt = (
        "Rewrite this skill for an agent that loops on one action, as JSON: "
        '[{"title": "Explore", "principle": "Look around first.", "when_to_apply": "at the start"}]'
    )
    conversation = [Message("system", TEACHER_ROLE), Message("user", prompt)]
    (reply,) = smollm2.generate([conversation], 800, schema=SKILLS_SCHEMA)
    jsonschema.validate(json.loads(reply.text), SKILLS_SCHEMA)
    skills = parse_skill_list(reply.text, "gen")
    assert skills and all(s.title and s.principle for s in skills)
    assert reply.completion_tokens > 0 and smollm2.usage.calls == 1


def test_the_backend_refuses_what_it_cannot_do(smollm2, tmp_path):
    with pytest.raises(LlamaCppError, match="cannot prefill"):
        smollm2.generate([[Message("user", "hi")]], 4, prefill="[")
    with pytest.raises(NotImplementedError, match="generates only"):
        smollm2.score([Message("user", "hi")], ["a", "b"])
    (tmp_path / "a.gguf").touch()
    (tmp_path / "b.gguf").touch()
    with pytest.raises(LlamaCppError, match="exactly one"):
        gguf_file(tmp_path)

"""``skills.retrieval: topk``: the release's top-k view of a library, ranked offline by BM25."""

from masa.rollout.agent import Agent, AgentConfig
from masa.rollout.evaluator import Evaluator
from masa.skills.library import Mistake, Skill, SkillLibrary
from masa.skills.retrieval import TopK, bm25_scores, retrieve
from tests.fakes import ScriptedLLM, fake_settings


def library() -> SkillLibrary:
    general = [Skill(f"g{i}", f"general {i}", f"principle {i}") for i in range(8)]
    general[5] = Skill("g5", "Heat with the microwave", "heat things in the microwave")
    return SkillLibrary(
        general_skills=general,
        task_specific_skills={
            "heat": [Skill(f"h{i}", f"heat step {i}", "heat it") for i in range(7)],
            "clean": [Skill("c1", "Sink", "clean at the sink")],
        },
        common_mistakes=[Mistake(f"m{i}", f"mistake {i}") for i in range(6)]
        + [
            Mistake(
                "m9", "forgetting to heat", correction="WRONG: heat mug. RIGHT: heat mug 1 with microwave 1."
            )
        ],
    )


def test_bm25_ranks_the_document_with_the_query_terms_first():
    scores = bm25_scores("pick and place", ["clean the mug", "pick up then place it", "place"])
    assert scores[1] > scores[2] > scores[0] == 0.0


def test_topk_keeps_the_release_counts_ranked_by_similarity_to_the_category():
    view = retrieve(library(), "heat", TopK(general=6, task=5, mistakes=5))
    assert len(view.general_skills) == 6 and view.general_skills[0].skill_id == "g5"
    assert [s.skill_id for s in view.task_specific_skills["heat"]] == ["h0", "h1", "h2", "h3", "h4"]
    assert len(view.common_mistakes) == 5 and view.common_mistakes[0].mistake_id == "m9"
    assert TopK.default() == TopK(general=6, task=5, mistakes=5)  # config/schema.yaml's skills.topk


def test_the_evaluator_prompts_and_keys_the_cache_on_the_retrieved_view():
    agent = Agent(ScriptedLLM(name="fake"), AgentConfig())
    evaluator = Evaluator(agent, None, fake_settings(), retrieval="topk", topk=TopK(1, 1, 1))  # type: ignore[arg-type]
    text = evaluator.skills_text(library(), "heat")
    assert text.count("- ") == 3 and "Heat with the microwave" in text and "RIGHT: heat mug 1" in text
    assert text == retrieve(library(), "heat", TopK(1, 1, 1)).render("heat")
    assert text != Evaluator(agent, None, fake_settings()).skills_text(library(), "heat")  # type: ignore[arg-type]


def test_topk_is_a_valid_retrieval_in_the_config_schema():
    from masa.config import schema_entry

    assert "topk" in schema_entry("skills", "retrieval")["enum"]

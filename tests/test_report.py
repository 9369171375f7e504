"""Cost accounting, the report's tables and figures, and the Adapter's one-shot rewrite, on fixtures."""

import json

import pandas as pd
import pytest

from masa.plots import tree_layout
from masa.rollout.cost import Cost, method_cost, record_cost
from masa.skills.library import SkillLibrary
from masa.stages.adapt import one_shot_rewrite
from masa.stages.contribution import leave_one_out
from masa.stages.report import (
    ReportPaths,
    env_label,
    method_markdown,
    method_table,
    swap_table,
    write_report,
)
from masa.teacher.teachers import EditTeacher

BASE = "resources/skills/scienceworld.json"


def summary(reward, steps=4, calls=4, hits=0, episodes=2):
    return {
        "reward_mean": reward,
        "reward_low": reward - 0.1,
        "reward_high": reward + 0.1,
        "success_rate": 0.5,
        "score_mean": reward,
        "noop_rate": 0.1,
        "episodes": episodes,
        "steps": steps,
        "llm_calls": calls,
        "prompt_tokens": 10 * calls,
        "completion_tokens": 0,
        "seconds": 1.5,
        "cache_hits": hits,
    }


def evaluation(backbone, method, rewards, source=None, label=None):
    record = {
        "backbone": backbone,
        "env": "scienceworld",
        "method": method,
        "library_source": source or backbone,
        "seeds": [0],
        "summary": summary(sum(rewards.values()) / len(rewards)),
        "by_category": {"find": summary(0.2)},
        "episodes": [
            {
                "task": t,
                "seed": 0,
                "reward": r,
                "won": r > 0.5,
                "category": "find",
                "steps": 3,
                "llm_calls": 2,
            }
            for t, r in rewards.items()
        ],
    }
    if label:
        record["env_label"] = label
    return record


def test_search_cost_sums_candidates_and_teacher_and_tolerates_extra_keys(tmp_path):
    tree = {
        "state": {
            "best": "t1",
            "teacher_usage": {"calls": 2, "prompt_tokens": 50, "completion_tokens": 9, "seconds": 1.5},
        },
        "candidates": [{"summary": summary(0.1, hits=1)}, {"summary": summary(0.2), "new_key": 1}],
    }
    (tmp_path / "tree.json").write_text(json.dumps(tree))
    assert record_cost(tmp_path / "tree.json") == Cost(3, 8, 10, 130, 9, 4.5)  # summaries + the teacher
    cached = {"steps": 5, "llm_calls": 5, "prompt_tokens": 9, "seconds": 2.0, "cached": True}
    tree["candidates"][0]["episodes"] = [cached, {**cached, "cached": False}]
    (tmp_path / "tree.json").write_text(json.dumps(tree))
    # episodes kept: a cache hit counts at its recorded cost, so the total does not depend on job order
    assert record_cost(tmp_path / "tree.json") == Cost(4, 14, 16, 108, 9, 7.0)
    (tmp_path / "record.json").write_text(json.dumps({"usage": {"calls": 3, "prompt_tokens": 7}, "x": 0}))
    assert record_cost(tmp_path / "record.json") == Cost(llm_calls=3, prompt_tokens=7)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    assert record_cost(adapter) == Cost()  # not trained yet / untrained: nothing recorded
    (adapter / "training.json").write_text(json.dumps({"seconds": 12.5, "steps": 3}))
    assert record_cost(adapter) == Cost(seconds=12.5)


def test_method_table_pairs_against_base_skill_and_prices_preparation(tmp_path):
    (tmp_path / "record.json").write_text(json.dumps({"usage": {"calls": 5}, "seconds": 2.0}))
    base = evaluation("a", "base_skill", {"t1": 0.1, "t2": 0.3})
    adapter = evaluation("a", "adapter", {"t1": 0.4, "t2": 0.4})
    df = method_table(
        [(base, *method_cost(base, [])), (adapter, *method_cost(adapter, [str(tmp_path / "record.json")]))]
    )
    assert list(df["method"]) == ["Base Skill", "Adapter"]
    row = df.iloc[1]
    assert row["diff_vs_base"] == pytest.approx(0.2) and row["pairs"] == 2
    assert (row["diff_low"], row["diff_high"]) == pytest.approx((0.1, 0.3))
    assert row["detectable"] == pytest.approx(2.8016 * 0.1414 / 2**0.5, rel=1e-3)  # sd of (0.3, 0.1)
    assert "| detectable change |" in method_markdown(df) and "±0.280" in method_markdown(df)
    assert row["prep_llm_calls"] == 5 and row["total_llm_calls"] == 9 and row["eval_llm_calls"] == 4
    assert pd.isna(df.iloc[0]["diff_vs_base"])


def test_swap_table_has_the_diagonal_and_each_transfer():
    records = [
        evaluation("a", "base_skill", {"t1": 0.2, "t2": 0.2}),
        evaluation("a", "masa", {"t1": 0.5, "t2": 0.3}),
        evaluation("b", "base_skill", {"t1": 0.4, "t2": 0.4}),
        evaluation("b", "masa", {"t1": 0.4, "t2": 0.6}),
    ]
    swapped = [evaluation("a", "masa", {"t1": 0.0, "t2": 0.2}, source="b")]
    df = swap_table(records, swapped).set_index(["source", "user"])
    assert df.loc[("a", "a"), "diff"] == pytest.approx(0.2)
    assert df.loc[("b", "a"), "diff"] == pytest.approx(-0.1)  # b's skills hurt a
    assert df.loc[("b", "b"), "diff"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="base_skill"):
        swap_table(records[1:2], [])


def test_write_report_keeps_environment_labels_apart(tmp_path):
    paths = {}
    for i, record in enumerate(
        [
            evaluation("a", "base_skill", {"t1": 0.2}, label="ALFWorld-style (generated games)"),
            evaluation("a", "masa", {"t1": 0.4}, label="ALFWorld-style (generated games)"),
        ]
    ):
        paths[str(tmp_path / f"{i}.json")] = []
        (tmp_path / f"{i}.json").write_text(json.dumps(record))
    out = ReportPaths(
        *(
            str(tmp_path / n)
            for n in ("s.md", "s.csv", "r.png", "c.csv", "c.png", "w.csv", "w.md", "w.png", "k.csv")
        )
    )
    skills = [
        {
            "group": "general",
            "id": "g1",
            "title": "Look first",
            "mean": 0.2,
            "low": 0.1,
            "high": 0.3,
            "pairs": 4,
        },
        {
            "group": "mistakes",
            "id": "m1",
            "title": "Loops",
            "mean": -0.1,
            "low": -0.3,
            "high": 0.1,
            "pairs": 4,
        },
    ]
    (tmp_path / "k.json").write_text(json.dumps({"backbone": "a", "env": "scienceworld", "skills": skills}))
    df = write_report(
        paths, [], out, {"noop_penalty": 0.25, "seeds": [0]}, contributions=[str(tmp_path / "k.json")]
    )
    contribution = pd.read_csv(tmp_path / "k.csv").set_index("id")
    assert contribution.at["g1", "verdict"] == "helps" and contribution.at["m1", "verdict"] == "unclear"
    assert set(df["env_label"]) == {"ALFWorld-style (generated games)"}
    text = (tmp_path / "s.md").read_text()
    assert "## a on ALFWorld-style (generated games)" in text and "| MASA | 0.400" in text
    assert "| a | scienceworld | general | Look first | +0.200 [+0.100, +0.300] | helps |" in text
    assert (tmp_path / "r.png").stat().st_size > 5000 and (tmp_path / "c.png").stat().st_size > 5000


def test_tree_layout_centres_parents_over_children():
    nodes = [
        {"node_id": "r", "parent_id": "", "children": ["x", "y"]},
        {"node_id": "x", "parent_id": "r", "children": []},
        {"node_id": "y", "parent_id": "r", "children": ["z"]},
        {"node_id": "z", "parent_id": "y", "children": []},
    ]
    pos = tree_layout(nodes)
    assert pos["x"] == (0.0, 1) and pos["z"] == (1.0, 2) and pos["y"] == (1.0, 1) and pos["r"] == (0.5, 0)


def test_adapter_rewrites_every_group_once_from_the_card_without_touching_the_base():
    base = SkillLibrary.load(BASE)
    before = base.to_dict()
    categories = list(base.task_specific_skills)[:2]
    adapted, sources = one_shot_rewrite(base, EditTeacher([]), {"family": "x"}, [*categories, "absent"], 0)
    assert base.to_dict() == before
    assert set(sources) == {"general", *categories}
    assert adapted.general_skills != base.general_skills
    assert all(adapted.task_specific_skills[c] != base.task_specific_skills[c] for c in categories)


def test_leave_one_out_drops_exactly_one_item_each_time():
    base = SkillLibrary.load(BASE)
    omissions = leave_one_out(base)
    total = len(base.general_skills) + sum(map(len, base.task_specific_skills.values()))
    assert len(omissions) == total + len(base.common_mistakes)
    for o in omissions:
        count = len(o.library.general_skills) + sum(map(len, o.library.task_specific_skills.values()))
        assert count + len(o.library.common_mistakes) == total + len(base.common_mistakes) - 1
    assert base.to_dict() == SkillLibrary.load(BASE).to_dict()


def test_records_without_a_label_are_shown_under_their_environment_name():
    # evaluations written before records carried env_label still get a heading of their own
    assert env_label({"env": "scienceworld"}) == "scienceworld"
    generated = "ALFWorld-style (generated games; not comparable to published ALFWorld numbers)"
    assert env_label({"env": "alfworld-generated", "env_label": generated}) == generated


def test_failed_episodes_are_a_column_of_the_method_and_category_tables():
    """Issue 13 group 3: the report reads ``failed`` instead of showing a failure as a score."""
    from masa.stages.report import category_table, method_markdown

    record = evaluation("a", "base_skill", {"t1": 0.1, "t2": 0.3})
    record["summary"]["failed"] = 2
    record["by_category"]["find"]["failed"] = 2
    df = method_table([(record, *method_cost(record, []))])
    assert df.iloc[0]["failed"] == 2
    assert "| failed |" in method_markdown(df).splitlines()[0]
    assert "| 2 | 2 |" in method_markdown(df).splitlines()[2]  # episodes, failed
    assert category_table([record]).iloc[0]["failed"] == 2


def test_the_change_vs_base_skill_pairs_only_episodes_both_played():
    base = evaluation("a", "base_skill", {"t1": 0.1, "t2": 0.3})
    adapter = evaluation("a", "adapter", {"t1": 0.4, "t2": 0.0})
    adapter["episodes"][1]["error"] = "EnvironmentFault: game process exited"
    row = method_table([(base, *method_cost(base, [])), (adapter, *method_cost(adapter, []))]).iloc[1]
    assert row["pairs"] == 1 and row["diff_vs_base"] == pytest.approx(0.3)

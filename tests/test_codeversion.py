"""A stage's code version follows every package module it imports, and nothing else."""

from __future__ import annotations

from pathlib import Path

from masa.codeversion import PACKAGE, code_version, source_closure, source_hash


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def toy_package(root: Path) -> tuple[Path, Path]:
    package = root / "masa"
    write(package / "__init__.py", "")
    write(package / "a.py", "def f():\n    from masa.sub import b  # inside a function: still followed\n")
    write(package / "sub" / "__init__.py", "")
    write(package / "sub" / "b.py", "X = 1\n")
    write(package / "unrelated.py", "Y = 2\n")
    script = write(root / "script.py", "from masa.a import f\nimport json\n")
    return package, script


def test_the_closure_follows_imports_transitively_and_inside_functions(tmp_path):
    package, script = toy_package(tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in source_closure(script, package)}
    assert names == {"script.py", "masa/__init__.py", "masa/a.py", "masa/sub/__init__.py", "masa/sub/b.py"}


def test_editing_an_imported_module_changes_the_version_and_an_unrelated_one_does_not(tmp_path):
    package, script = toy_package(tmp_path)
    before = source_hash(script, package)
    (package / "unrelated.py").write_text("Y = 3\n")
    assert source_hash(script, package) == before
    (package / "sub" / "b.py").write_text("X = 2\n")
    assert source_hash(script, package) != before


def test_the_workflow_scripts_reach_the_modules_they_run():
    scripts = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
    search = {
        p.relative_to(PACKAGE).as_posix()
        for p in source_closure(scripts / "climb_general_skills.py")
        if p.is_relative_to(PACKAGE)
    }
    needed = {"stages/general.py", "search/hillclimb.py", "teacher/teachers.py", "rollout/agent.py"}
    assert needed | {"envs/scienceworld.py"} <= search
    export = {p.name for p in source_closure(scripts / "export_agent_skills.py")}
    assert {"agentskills.py", "process.py"} <= export
    assert not {"hillclimb.py", "ucb.py", "context.py"} & export  # exporting runs no search code
    assert code_version(scripts / "report.py") != code_version(scripts / "climb_general_skills.py")

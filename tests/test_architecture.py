"""The rules of ARCHITECTURE.md, checked on the source: what each folder may import (an AST scan of every
import statement, the ones inside functions included), that every stage is findable from its name in
ARCHITECTURE.md's stage table, and that the file paths docstrings and comments cite exist."""
from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"megascience_datasets": REPO / "megascience_datasets",
            "megascience_build": REPO / "builders" / "megascience_build",
            "megascience_eval": REPO / "builders" / "megascience_eval"}
BUILD = "megascience_build"
EXECUTORS = tuple(f"{BUILD}.engine.{m}" for m in ("executor_local", "executor_ray", "orchestration"))
TOP = tuple(f"{BUILD}.{m}" for m in ("cli", "release", "mixture_release", "demo"))
ALGORITHMS = tuple(f"{BUILD}.{m}" for m in ("near_duplicates", "selection", "contamination", "upstream", "textbooks"))

# (importing modules, modules they must not import, why); a name covers the module and everything below it
RULES = [
    (("megascience_datasets",), (BUILD, "megascience_eval"), "the loader stands alone: users install only it"),
    ((f"{BUILD}.stages",), EXECUTORS + TOP, "a stage runs under any executor and knows nothing of releases"),
    (ALGORITHMS, (f"{BUILD}.stages",) + EXECUTORS + TOP, "algorithm folders are libraries the stages call"),
    ((f"{BUILD}.backends",), (f"{BUILD}.engine", f"{BUILD}.stages") + ALGORITHMS + TOP,
     "backends are the bottom layer: requests in, results out"),
    ((f"{BUILD}.engine",), EXECUTORS + TOP, "the engine below the executors is what they run, not what it runs on"),
    (("megascience_eval",), TOP, "the eval package runs on the engine, not on the build CLI or releases"),
]


def source_modules():
    """(module name, path, is package) of every .py file of the three packages."""
    for package, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            if all(p.isidentifier() for p in parts):      # not the corpus' helper scripts (corpus/sources)
                yield ".".join(parts), path, is_package


def imports_of(module: str, path: Path, is_package: bool) -> set[str]:
    """Absolute names of what a module imports (`from a import b` gives both a and a.b)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def under(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = {name: imports_of(name, path, is_package) for name, path, is_package in source_modules()}


@pytest.mark.parametrize("importers,forbidden,why", RULES, ids=[r[0][0].split(".")[-1] for r in RULES])
def test_import_rules(importers, forbidden, why):
    bad = sorted(f"{module} imports {target}" for module, targets in MODULES.items()
                 if under(module, importers) and not under(module, forbidden)
                 for target in targets if under(target, forbidden))
    assert not bad, f"{why} (ARCHITECTURE.md):\n" + "\n".join(bad)


def test_the_scan_sees_the_packages():
    """The rules above would pass vacuously on a wrong root or a wrong resolution of relative imports."""
    stage_imports = set().union(*(t for m, t in MODULES.items() if under(m, (f"{BUILD}.stages",))))
    assert f"{BUILD}.engine.stage" in stage_imports
    assert any(under(m, ALGORITHMS) for m in MODULES) and "megascience_datasets.catalogue" in MODULES


# -- stages findable from their names --------------------------------------------------------------------------
def stage_classes() -> dict[str, tuple[str, str]]:
    """Registered name -> (class name, module file) of every stage class under stages/ (a class whose body
    sets `name = "..."`)."""
    found = {}
    for path in sorted((PACKAGES[BUILD] / "stages").glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if (isinstance(item, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "name" for t in item.targets)
                        and isinstance(item.value, ast.Constant) and isinstance(item.value.value, str)
                        and item.value.value):
                    found[item.value.value] = (node.name, path.name)
    return found


def stage_table() -> dict[str, tuple[str, list[str]]]:
    """ARCHITECTURE.md's stage table: stage name -> (module file, test files)."""
    rows = {}
    for line in (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("stages/") and cells[1].endswith(".py"):
            rows[cells[0]] = (cells[1].removeprefix("stages/"), re.findall(r"tests/[\w/]+\.py", cells[2]))
    return rows


def test_every_stage_has_its_module_and_tests_in_the_architecture_table():
    stages, table = stage_classes(), stage_table()
    assert len(stages) >= 15, stages
    problems = []
    for name, (cls, module) in sorted(stages.items()):
        if name not in table:
            problems.append(f"stage {name!r} ({module}) is not in ARCHITECTURE.md's stage table")
            continue
        listed_module, tests = table[name]
        if listed_module != module:
            problems.append(f"stage {name!r}: the table says stages/{listed_module}, the class is in stages/{module}")
        if not tests:
            problems.append(f"stage {name!r}: the table names no test file")
        for test in tests:
            path = REPO / test
            if not path.is_file():
                problems.append(f"stage {name!r}: test file {test} does not exist")
            elif cls not in path.read_text(encoding="utf-8") and f'"{name}"' not in path.read_text(encoding="utf-8"):
                problems.append(f"stage {name!r}: {test} names neither {cls} nor {name!r}")
    problems += [f"ARCHITECTURE.md lists stage {name!r}, which no class under stages/ registers"
                 for name in sorted(set(table) - set(stages))]
    assert not problems, "\n".join(problems)


# -- cited files exist ---------------------------------------------------------------------------------------
# a path with a folder and a file extension, or a tests/ or benchmarks/ path
CITED = re.compile(r"(?<![\w./<>{}*$-])((?:\.\./)*(?:[\w.-]+/)+[\w.-]+\.(?:py|yaml|yml|md|json|jsonl|txt|toml|cfg)"
                   r"|(?:tests|benchmarks)/[\w./-]*\w)(?![\w/*{<-]|\.\w)")
BARE_DOC = re.compile(r"(?<![\w./-])([A-Za-z][\w-]*\.md)\b")
OUTSIDE = re.compile(r"\bDESIGN\b|\.\./shared/(?!benchmarks\b)")    # documents of the workspace, not of the repository
OUTPUT_FILES = {"report.md", "eval_report.md"}                      # what the CLIs write, not documents


def docs_and_comments(path: Path):
    """(line, text) of every docstring and comment of a Python file."""
    source = path.read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield node.body[0].lineno, doc
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string


def repository_folders() -> set[str]:
    """First path components that make a citation a repository path: top-level folders and package folders."""
    names = {p.name for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".")}
    for root in PACKAGES.values():
        names |= {root.name} | {p.name for p in root.iterdir() if p.is_dir() and p.name != "__pycache__"}
    return names


def test_cited_repository_files_exist():
    folders = repository_folders()
    dangling = []
    for root in PACKAGES.values():
        for path in sorted(root.rglob("*.py")):
            bases = (REPO, root, root.parent, path.parent)
            for line, text in docs_and_comments(path):
                where = f"{path.relative_to(REPO)}:{line}"
                for match in CITED.finditer(text):
                    cited = match.group(1).rstrip(".")
                    first = cited.lstrip("./").split("/")[0]
                    if (first in folders or cited.startswith("../")) and not any((b / cited).exists() for b in bases):
                        dangling.append(f"{where}: {cited}")
                for match in BARE_DOC.finditer(text):
                    doc = match.group(1)
                    if doc not in OUTPUT_FILES and not any((b / doc).exists() for b in bases):
                        dangling.append(f"{where}: {doc}")
                dangling += [f"{where}: {m.group(0)} (outside the repository)" for m in OUTSIDE.finditer(text)]
    assert not dangling, "docstrings and comments cite files that are not in the repository:\n" + "\n".join(dangling)


# -- test helpers ----------------------------------------------------------------------------------------------
def test_test_modules_have_unique_names_and_no_path_edits():
    """Helpers are imported by name through setup.cfg's pytest `pythonpath`, so a name used in two test folders
    (or `from conftest import`, which means whichever conftest came last) breaks a run of several folders."""
    tests = REPO / "tests"
    seen: dict[str, str] = {}
    problems = []
    forbidden = re.compile(r"^\s*(from conftest import|import conftest\b|sys\.path\.(insert|append)\()", re.M)
    for path in sorted(tests.rglob("*.py")):
        rel = str(path.relative_to(REPO))
        if path.resolve() == Path(__file__).resolve():
            continue
        if forbidden.search(path.read_text(encoding="utf-8")):
            problems.append(f"{rel}: imports a conftest by name or edits sys.path")
        in_package = (path.parent / "__init__.py").is_file()
        if path.name != "conftest.py" and not in_package:
            if path.stem in seen:
                problems.append(f"{rel}: module name {path.stem!r} is also {seen[path.stem]}")
            seen[path.stem] = rel
    assert not problems, "\n".join(problems)

"""Every CLI verb works from an installed wheel, with no checkout: the wheel is built from this working tree,
installed with --no-deps into a fresh venv, and `megascience-build --help`, `stages` and `release` run from
there in a folder outside the checkout. The dependencies come from the test environment's site-packages on
PYTHONPATH (a .pth file there, such as the editable install's finder, is not read from PYTHONPATH), so the
build package and its data can only come from the wheel."""
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

from release_lib import CONFIGS, TAG, work_args

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PACKAGE_DIRS = ("builders/megascience_build", "builders/megascience_eval", "megascience_datasets")

pytestmark = pytest.mark.slow


def _working_tree_copy(dest: Path) -> Path:
    """The files git tracks or would track, as they are in the working tree (no build outputs, no .venv)."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, environment, wheel path): the wheel of this tree installed alone into a fresh venv."""
    root = tmp_path_factory.mktemp("wheel")
    tree = _working_tree_copy(root / "tree")      # built from a copy: no build/ or *.egg-info in the checkout
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(root / "dist"), str(tree)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    (wheel,) = (root / "dist").glob("megascience_datasets-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=300)
    bindir = root / "venv" / "bin"
    out = subprocess.run([sys.executable, "-m", "pip", "--python", str(bindir / "python"), "install", "--no-deps",
                          "--no-index", "-q", str(wheel)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    deps = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MEGASCIENCE_"))}
    env.update(PYTHONPATH=os.pathsep.join(deps), PYTHONNOUSERSITE="1", PATH=f"{bindir}{os.pathsep}{env['PATH']}")
    return bindir, env, wheel


def _run(installed, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    bindir, env, _ = installed
    return subprocess.run([str(bindir / args[0]), *args[1:]], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=600)


def test_the_wheel_holds_every_package_and_data_file(installed):
    names = set(zipfile.ZipFile(installed[2]).namelist())
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard",
                              *PACKAGE_DIRS], capture_output=True, text=True, check=True).stdout.split()
    missing = []
    for rel in tracked:
        if not (REPO / rel).is_file() or "__pycache__" in rel:
            continue
        installed_as = rel.removeprefix("builders/")
        if installed_as not in names:
            missing.append(rel)
    assert not missing, f"not in the wheel (setup.cfg [options] packages / [options.package_data]): {missing}"


def test_the_installed_package_is_the_wheel(installed, tmp_path):
    out = _run(installed, "python", "-c", "import json, megascience_build, megascience_datasets, megascience_eval;"
               "print(json.dumps([m.__file__ for m in (megascience_build, megascience_datasets, megascience_eval)]))",
               cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    venv = installed[0].parent.resolve()
    for path in json.loads(out.stdout):
        assert Path(path).resolve().is_relative_to(venv), path


def test_help_and_stages_from_the_wheel(installed, tmp_path):
    out = _run(installed, "megascience-build", "--help", cwd=tmp_path)
    assert out.returncode == 0 and "release" in out.stdout, out.stderr
    out = _run(installed, "megascience-build", "stages", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "dedup_questions" in out.stdout and "select_subsets" in out.stdout


def test_run_status_report_and_plan_from_the_wheel(installed, built, tmp_path):
    """The packaged natural_reasoning pipeline (its prompts read from the wheel) with the scripted models of the
    release fixtures gives the checkout's output shards byte for byte; status, report and plan read its work
    directory."""
    bindir, env, wheel = installed
    helpers = [str(HERE), str(HERE.parent / "mixture"), str(HERE.parent)]    # the scripted models' responders
    env = {**env, "PYTHONPATH": os.pathsep.join([*helpers, env["PYTHONPATH"]])}
    shutil.copy(built["root"] / "natural_reasoning.yaml", tmp_path)
    shutil.copytree(built["root"] / "sources" / "nr", tmp_path / "sources" / "nr")
    work = tmp_path / "work"
    cli = [str(bindir / "megascience-build")]
    out = subprocess.run([*cli, "run", "natural_reasoning.yaml", "--work", str(work), "--workers", "1",
                          "--no-progress"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    ours = sorted((work / "output").glob("part-*.parquet"))
    theirs = sorted((built["works"]["natural_reasoning"] / "output").glob("part-*.parquet"))
    assert ours and [p.read_bytes() for p in ours] == [p.read_bytes() for p in theirs]
    for verb in (["status", "--work", str(work)], ["report", "--work", str(work)],
                 ["plan", "--work", str(work), "--rows", "1000"]):
        out = subprocess.run([*cli, *verb], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        assert out.returncode == 0, (verb, out.stderr[-4000:])
    assert (work / "report.md").is_file()


def test_release_from_the_wheel_gives_the_same_commit(installed, built, released, tmp_path):
    """The same work directories released from the wheel give the checkout's release commit, byte for byte
    (cards rendered by the installed package, catalogue read from its data)."""
    dest = tmp_path / "from-wheel"
    args = [a for c in CONFIGS for a in ("--config", c)]
    out = _run(installed, "megascience-build", "release", *work_args(built["works"]), *args, "--dest", str(dest),
               "--git", "--tag", TAG, "--message", "MegaScience test release v1.0", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    record = json.loads((dest / "RELEASE.json").read_text())
    assert record["sha"] == released["sha"]
    assert sorted(p.name for p in (dest / "cards").iterdir()) == sorted(
        p.name for p in (released["dest"] / "cards").iterdir())

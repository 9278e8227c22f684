"""`megascience-build release`: finished pipeline work directories -> the dataset repository folder (DESIGN §4),
optionally committed to git (any git-backed Hub mirror, e.g. olah, serves it) and/or published to a Hub
repository with a tag through huggingface_hub.

Which work directory gives which configuration:
    textbook, textbook_no_decontam, textbook_no_cot, textbook_no_refine, textbook_refined_by_extractor,
    textbook_difficulty_distill          the pipeline's final stage -> the configuration of the same name
    natural_reasoning, nemotron_science, scp116k, textbook_selection, megascience
                                         as megascience_build.mixture_release.layout says (stages and
                                         membership columns -> catalogue names)

The folder's files depend only on the work directories' data and the release's tag: a replay from the
request cache gives the same shards byte for byte, and the same folder gives the same git commit (fixed
author, committer and date).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from megascience_datasets.cards import render_family_card

from . import mixture_release

TEXTBOOK_PIPELINES = ("textbook", "textbook_no_decontam", "textbook_no_cot", "textbook_no_refine",
                      "textbook_refined_by_extractor", "textbook_difficulty_distill")
MIXTURE_PIPELINES = ("natural_reasoning", "nemotron_science", "scp116k", "textbook_selection", "megascience")
RELEASE_JSON = "RELEASE.json"
# the same folder gives the same commit: who and when are fixed (SOURCE_DATE_EPOCH overrides the date)
GIT_AUTHOR = ("megascience-build", "release@megascience.invalid")
GIT_DATE = "2025-07-22T00:00:00+00:00"   # the paper's date
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ReleaseError(Exception):
    """A release that cannot be made as asked; the message names the work directory/configuration/file."""


@dataclass
class ReleaseOptions:
    works: dict[str, Path]
    dest: Path
    configs: list[str] | None = None      # None: every configuration the work directories give
    complete: bool = False                # every catalogue configuration must be present
    default: str | None = None
    tag: str | None = None
    message: str | None = None
    overwrite: bool = False
    git: bool = False
    publish: str | None = None            # Hub repo id
    endpoint: str | None = None
    token_env: str | None = None
    # family cards to publish; None: the installed package renders them (dataset_cards/ in the repository is
    # the same rendering, checked by tests/loader), so a release works from a wheel, with no checkout
    cards_dir: Path | None = None


# ------------------------------------------------------------------------------------------ configuration

def parse_work(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise ReleaseError(f"--work expects NAME=WORKDIR, got {text!r}")
    return name, Path(path)


def load_release_file(path: str | Path) -> dict[str, Any]:
    """release.yaml: works {name: dir} (relative to the file), and optionally dest, configs, complete, default,
    tag, message, git, publish {repo, endpoint, token_env}."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ReleaseError(f"{path}: cannot read ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise ReleaseError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise ReleaseError(f"{path}: expected a mapping at the top level")
    known = {"works", "dest", "configs", "complete", "default", "tag", "message", "git", "publish"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ReleaseError(f"{path}: unknown key(s) {unknown}; expected some of {sorted(known)}")
    works = doc.get("works")
    if not isinstance(works, dict) or not works:
        raise ReleaseError(f"{path}: `works` must map pipeline names to work directories")
    out: dict[str, Any] = {k: doc[k] for k in doc if k not in ("works", "dest", "publish")}
    out["works"] = {str(k): (path.parent / str(v)).resolve() for k, v in works.items()}
    if doc.get("dest") is not None:
        out["dest"] = (path.parent / str(doc["dest"])).resolve()
    pub = doc.get("publish")
    if pub is not None:
        if not isinstance(pub, dict) or not pub.get("repo"):
            raise ReleaseError(f"{path}: `publish` must be a mapping with `repo` (and optional endpoint, token_env)")
        out.update(publish=str(pub["repo"]), endpoint=pub.get("endpoint"), token_env=pub.get("token_env"))
    if "configs" in out and not (isinstance(out["configs"], list) and all(isinstance(c, str) for c in out["configs"])):
        raise ReleaseError(f"{path}: `configs` must be a list of configuration names")
    return out


def layout(pipeline: str) -> list[tuple[str, str | None, str | None]]:
    """(configuration, stage label or None for the final stage, membership column or None)."""
    if pipeline in TEXTBOOK_PIPELINES:
        return [(pipeline, None, None)]
    if pipeline in MIXTURE_PIPELINES:
        return mixture_release.layout(pipeline)
    raise ReleaseError(f"no configurations known for pipeline {pipeline!r}; known: "
                       f"{', '.join(TEXTBOOK_PIPELINES + MIXTURE_PIPELINES)}")


def builder_of(config: str) -> str | None:
    """The pipeline whose work directory gives this configuration."""
    for p in TEXTBOOK_PIPELINES + MIXTURE_PIPELINES:
        if any(c == config for c, _, _ in layout(p)):
            return p
    return None


# ------------------------------------------------------------------------------------------ assembling

def _read_work_manifest(name: str, work: Path) -> dict:
    path = work / "manifest.json"
    if not work.is_dir():
        raise ReleaseError(f"work directory {work} (for {name!r}) does not exist")
    try:
        return json.loads(path.read_text())
    except OSError:
        raise ReleaseError(f"{path}: missing; has the {name!r} pipeline finished in this work directory?") from None
    except json.JSONDecodeError as e:
        raise ReleaseError(f"{path}: not valid JSON ({e})") from None


def _input_record(work: Path, manifest: dict) -> dict[str, Any]:
    """What a run read, without the builder's local paths: kind, rows and the sha256 of each input shard."""
    given = manifest.get("input", {})
    return {"kind": given.get("kind"), "rows": given.get("rows"), "limit": given.get("limit"),
            "shards_sha256": [hashlib.sha256(p.read_bytes()).hexdigest()
                              for p in sorted((work / "input").glob("part-*.parquet"))]}


def _run_fields(work: Path, manifest: dict, upto: int) -> dict[str, Any]:
    """The manifest fields of one configuration: the run, its input, models, prompts and counts up to a stage
    (the same fields mixture_release.assemble writes for the mixture side)."""
    stages = manifest["stages"][:upto + 1]
    models = sorted({json.dumps(m, sort_keys=True) for s in stages for m in s["models"]})
    prompts = sorted({(p["name"], p["sha256"]) for s in stages for p in s["prompts"]})
    return {
        "pipeline": {"name": manifest["name"], "sha256": manifest["pipeline"]["sha256"],
                     "seed": manifest["pipeline"]["seed"]},
        "stage": stages[-1]["label"],
        "upstream": {"input": _input_record(work, manifest)},
        "models": [json.loads(m) for m in models],
        "prompts": [{"name": n, "sha256": h} for n, h in prompts],
        "counts": [{"stage": s["label"], "rows_in": s.get("rows_in"), "rows_out": s.get("rows_out"),
                    "dropped": s.get("dropped", {}), "counters": s.get("counters", {})} for s in stages],
    }


def _final_table(name: str, work: Path, manifest: dict) -> pa.Table:
    last = manifest["stages"][-1]
    folder = work / "stages" / f"{last['index']:02d}_{last['label']}"
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts:
        raise ReleaseError(f"{folder}: no shards of the final stage {last['label']!r} of {name!r}")
    return pa.concat_tables([pq.read_table(p) for p in parts])


def _textbook_config(name: str, work: Path, manifest: dict, columns: list[str]) -> tuple[pa.Table, dict]:
    table = _final_table(name, work, manifest)
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ReleaseError(f"{work}: the final stage of {name!r} lacks column(s) {missing} of configuration "
                           f"{name!r}")
    return table.select(columns), _run_fields(work, manifest, len(manifest["stages"]) - 1)


def assemble_release(works: Mapping[str, Path], configs: Sequence[str] | None = None,
                     complete: bool = False) -> tuple[dict[str, list], dict[str, dict], dict[str, Any]]:
    """({config: [table]}, {config: manifest fields}, {pipeline: upstream revision}) in catalogue order."""
    columns_all = mixture_release.catalogue_columns()
    offered = {c: p for p in works for c, _, _ in layout(p)}
    wanted = list(configs) if configs is not None else list(offered)
    unknown = [c for c in wanted if c not in columns_all]
    if unknown:
        raise ReleaseError(f"configuration(s) {unknown} are not in the catalogue (`megascience list`)")
    if complete:
        # configurations no pipeline builds (views the loader derives from released data) are not required
        absent = [c for c in columns_all if c not in wanted and builder_of(c) is not None]
        if absent:
            raise ReleaseError("a complete release lacks configuration(s): " + "; ".join(
                f"{c} (from the {builder_of(c)!r} work directory)" for c in absent))
    without = [c for c in wanted if c not in offered]
    if without:
        raise ReleaseError("no work directory given for configuration(s): " + "; ".join(
            f"{c} (give --work {builder_of(c)}=WORKDIR)" for c in without))
    manifests = {p: _read_work_manifest(p, Path(w)) for p, w in works.items()
                 if any(offered[c] == p for c in wanted)}
    tables: dict[str, list] = {}
    extra: dict[str, dict] = {}
    for pipeline, manifest in manifests.items():
        mine = [c for c in wanted if offered[c] == pipeline]
        work = Path(works[pipeline])
        if pipeline in TEXTBOOK_PIPELINES:
            (c,) = mine
            table, fields = _textbook_config(c, work, manifest, columns_all[c])
            tables[c], extra[c] = [table], fields
            continue
        try:
            t, e = mixture_release.assemble({pipeline: work}, {c: columns_all[c] for c in mine})
        except (ValueError, FileNotFoundError, KeyError) as exc:
            raise ReleaseError(f"work directory {work} ({pipeline!r}): {exc}") from None
        tables.update(t)
        extra.update(e)
    lost = [c for c in wanted if c not in tables]
    if lost:
        raise ReleaseError(f"the work directories gave no data for configuration(s) {lost}")
    order = [c for c in columns_all if c in tables]
    sources = {p: extra[c]["upstream"] for c in order for p in [offered[c]] if extra[c].get("upstream")}
    return {c: tables[c] for c in order}, {c: extra[c] for c in order}, sources


def family_cards(cards_dir: Path, groups: Sequence[str]) -> dict[str, str]:
    """{group: the family's prose paragraph} from dataset_cards/<group>.md (the paragraph under its heading)."""
    from megascience_datasets.cards import FAMILIES

    out = {}
    for g in groups:
        path = cards_dir / f"{g}.md"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            raise ReleaseError(f"dataset card {path} is missing (one per configuration family)") from None
        heading = f"## {FAMILIES[g][0]}\n\n"
        at = text.find(heading)
        if at < 0:
            raise ReleaseError(f"{path}: no section {heading.strip()!r}")
        out[g] = text[at + len(heading):].split("\n\n", 1)[0].strip()
    return out


# ------------------------------------------------------------------------------------------ the folder

def write_release_folder(opts: ReleaseOptions, staging: Path) -> dict:
    """Write the folder into `staging` (a new directory); return its manifest."""
    from megascience_datasets.catalogue import load_catalogue
    from megascience_datasets.errors import MegascienceError
    from megascience_datasets.repo_folder import write_repo_folder

    tables, extra, sources = assemble_release(opts.works, opts.configs, opts.complete)
    cat = load_catalogue()
    groups = sorted({cat[c].group for c in tables})
    default = opts.default or next((c for c in ("textbook", "megascience") if c in tables), None)
    if default is not None and default not in tables:
        raise ReleaseError(f"default configuration {default!r} is not among the released ones {list(tables)}")
    revision: dict[str, Any] = {"tag": opts.tag, "sha": None, "sources": sources}
    if opts.publish:
        revision["repo"] = opts.publish
        revision["url"] = f"{(opts.endpoint or 'https://huggingface.co').rstrip('/')}/datasets/{opts.publish}"
    try:
        manifest = write_repo_folder(staging, tables, revision=revision, extra=extra, default=default,
                                     cards=family_cards(opts.cards_dir, groups) if opts.cards_dir else None)
    except MegascienceError as exc:   # e.g. a configuration with no rows, or a column of the wrong type
        raise ReleaseError(str(exc)) from None
    (staging / "cards").mkdir()
    for g in groups:
        if opts.cards_dir:
            shutil.copyfile(opts.cards_dir / f"{g}.md", staging / "cards" / f"{g}.md")
        else:
            (staging / "cards" / f"{g}.md").write_text(render_family_card(g), encoding="utf-8")
    return manifest


def _swap_into(dest: Path, staged: Path) -> None:
    """Replace everything in dest but .git (and a previous RELEASE.json) with the staged folder's content."""
    dest.mkdir(parents=True, exist_ok=True)
    for p in dest.iterdir():
        if p.name not in (".git",):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    for p in staged.iterdir():
        os.replace(p, dest / p.name)


def _check_dest(opts: ReleaseOptions) -> None:
    d = opts.dest
    if d.exists() and not d.is_dir():
        raise ReleaseError(f"--dest {d} exists and is not a directory")
    content = [p.name for p in d.iterdir() if p.name != ".git"] if d.is_dir() else []
    if content and not opts.overwrite:
        raise ReleaseError(f"--dest {d} is not empty ({', '.join(sorted(content)[:5])}); pass --overwrite to "
                           f"replace its content (a .git directory is kept)")
    if (d / ".git").exists() and not opts.git:
        raise ReleaseError(f"--dest {d} is a git repository; pass --git to commit the new release to it")


# ------------------------------------------------------------------------------------------ git

def _git(repo: Path, *args: str, env: Mapping[str, str] | None = None, input: str | None = None) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    cmd = ["git", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", "-c", "core.hooksPath=/dev/null",
           "-c", "core.autocrlf=false", "-C", str(repo), *args]
    out = subprocess.run(cmd, env={**base, **(env or {})}, capture_output=True, text=True, input=input)
    if out.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)} in {repo} failed: {out.stderr.strip()}")
    return out.stdout.strip()


def _git_date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return f"@{int(epoch)} +0000" if epoch and epoch.isdigit() else GIT_DATE


def git_commit(dest: Path, staged: Path, tag: str | None, message: str) -> str:
    """Commit the staged folder as the next commit of branch main of the repository at dest, tag it, and move
    the folder in. The tag is checked before anything in dest changes. Returns the commit sha."""
    dest.mkdir(parents=True, exist_ok=True)
    if not (dest / ".git").exists():
        _git(dest, "init", "-q", "-b", "main")
    head = subprocess.run(["git", "-C", str(dest), "rev-parse", "-q", "--verify", "refs/heads/main^{commit}"],
                          capture_output=True, text=True).stdout.strip() or None
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(staged, f"--git-dir={dest / '.git'}", "--work-tree=.", "add", "-A", env=index)
        tree = _git(dest, "write-tree", env=index)
    if head and _git(dest, "rev-parse", f"{head}^{{tree}}") == tree:
        commit = head   # the same folder: the same commit, nothing new to record
    else:
        name, email = GIT_AUTHOR
        when = _git_date()
        env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": when,
               "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email, "GIT_COMMITTER_DATE": when}
        commit = _git(dest, "commit-tree", tree, *(["-p", head] if head else []), env=env, input=message + "\n")
    if tag:
        existing = subprocess.run(["git", "-C", str(dest), "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}"],
                                  capture_output=True, text=True).stdout.strip()
        if existing and existing != commit:
            raise ReleaseError(f"tag {tag!r} already names commit {existing} in {dest}, not this release's {commit}; "
                               f"choose a new tag")
    _swap_into(dest, staged)
    _git(dest, "update-ref", "refs/heads/main", commit)
    _git(dest, "symbolic-ref", "HEAD", "refs/heads/main")
    _git(dest, "read-tree", "HEAD")
    _git(dest, "update-index", "-q", "--refresh")
    if tag:
        _git(dest, "tag", "-f", tag, commit)   # lightweight: the tag resolves straight to the commit
    exclude = dest / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    excluded = exclude.read_text().splitlines() if exclude.exists() else []
    if RELEASE_JSON not in excluded:   # the record of a commit's sha cannot be part of that commit
        with open(exclude, "a") as f:
            f.write(f"{RELEASE_JSON}\n")
    return commit


# ------------------------------------------------------------------------------------------ Hub

def hub_token(token_env: str | None) -> str | None:
    if token_env is None:
        return None
    token = os.environ.get(token_env)
    if not token:
        raise ReleaseError(f"--token-env {token_env}: the environment variable {token_env} is not set or empty")
    return token


def publish(dest: Path, repo_id: str, *, endpoint: str | None, token: str | None, tag: str, message: str) -> str:
    """Create the dataset repository if needed, upload the folder as one commit (removing files of the previous
    release that this one lacks), tag that commit; return its sha."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    taken = {t.name: t.target_commit for t in api.list_repo_refs(repo_id, repo_type="dataset").tags}
    if tag in taken:   # checked before uploading: a release never leaves an untagged commit behind
        raise ReleaseError(f"tag {tag!r} already exists in {repo_id} (commit {taken[tag]}); choose a new tag")
    info = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(dest), commit_message=message,
                             ignore_patterns=[".git/*", ".git", RELEASE_JSON], delete_patterns=["*"])
    sha = info.oid
    api.create_tag(repo_id, tag=tag, revision=sha, tag_message=message, repo_type="dataset")
    return sha


# ------------------------------------------------------------------------------------------ the command

def check_options(opts: ReleaseOptions) -> None:
    if not opts.works:
        raise ReleaseError("no work directories: give --work NAME=WORKDIR (repeatable) or --from-config FILE")
    for name in opts.works:
        layout(name)
    if opts.tag is not None and not TAG_RE.match(opts.tag):
        raise ReleaseError(f"--tag {opts.tag!r}: expected letters, digits, '.', '_' or '-' (e.g. v1.0)")
    if opts.publish:
        if not opts.tag:
            raise ReleaseError("--publish needs --tag: the published commit is tagged so that it can be cited")
        if opts.publish.count("/") != 1 or not all(opts.publish.split("/")):
            raise ReleaseError(f"--publish {opts.publish!r}: expected a Hub repo id ORG/NAME")
        hub_token(opts.token_env)
    elif opts.endpoint or opts.token_env:
        raise ReleaseError("--endpoint and --token-env only apply with --publish REPO_ID")


def release(opts: ReleaseOptions) -> dict:
    """Assemble, optionally commit and publish; return the RELEASE.json record."""
    check_options(opts)
    opts.dest = Path(opts.dest).resolve()
    _check_dest(opts)
    message = opts.message or f"MegaScience release {opts.tag or '(untagged)'}"
    opts.dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{opts.dest.name}-release-", dir=opts.dest.parent))
    try:
        staged = tmp / "folder"
        manifest = write_release_folder(opts, staged)
        record: dict[str, Any] = {"tag": opts.tag, "message": message, "default": manifest["default"],
                                  "configs": {n: {"rows": c["rows"], "shards": len(c["shards"])}
                                              for n, c in manifest["configs"].items()}}
        if opts.git:
            record["git"] = {"path": str(opts.dest), "branch": "main",
                             "sha": git_commit(opts.dest, staged, opts.tag, message)}
        else:
            _swap_into(opts.dest, staged)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if opts.publish:
        sha = publish(opts.dest, opts.publish, endpoint=opts.endpoint, token=hub_token(opts.token_env),
                      tag=opts.tag, message=message)
        record["hub"] = {"repo": opts.publish, "endpoint": opts.endpoint or "https://huggingface.co", "sha": sha}
    record["sha"] = (record.get("hub") or record.get("git") or {}).get("sha")
    (opts.dest / RELEASE_JSON).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record

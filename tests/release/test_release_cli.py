"""`megascience-build release` argument handling and its errors: each names what is missing or wrong, exits 2,
and leaves --dest as it was. Publishing (--publish) is checked here for its arguments and for a failing
endpoint only: no writable Hub-API server runs offline here (olah is read-only)."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import yaml

from release_lib import release_cli, work_args


def test_missing_work_directories_and_configurations_are_named(built, tmp_path):
    works = built["works"]
    dest = tmp_path / "out"
    out = release_cli("--work", f"textbook={tmp_path / 'nowhere'}", "--dest", str(dest))
    assert out.returncode == 2 and f"work directory {tmp_path / 'nowhere'} (for 'textbook') does not exist" in out.stderr
    empty = tmp_path / "unfinished"
    empty.mkdir()
    out = release_cli("--work", f"textbook_no_cot={empty}", "--dest", str(dest))
    assert out.returncode == 2 and f"{empty}/manifest.json: missing" in out.stderr
    out = release_cli(*work_args(works), "--config", "textbook", "--config", "megascience", "--dest", str(dest))
    assert out.returncode == 2
    assert "no work directory given for configuration(s): megascience (give --work megascience=WORKDIR)" in out.stderr
    # by default every configuration the work directories give: natural_reasoning_dc needs decontamination
    out = release_cli(*work_args(works), "--dest", str(dest))
    assert out.returncode == 2
    assert "has no stage 'decontaminate' (needed for configuration 'natural_reasoning_dc')" in out.stderr
    # --complete: every catalogue configuration, each missing one named with the pipeline that builds it
    out = release_cli(*work_args(works), "--config", "textbook", "--complete", "--dest", str(dest))
    assert out.returncode == 2
    for missing in ("megascience (from the 'megascience' work directory)",
                    "textbook_no_cot (from the 'textbook_no_cot' work directory)",
                    "scp116k_dc (from the 'scp116k' work directory)",
                    "textbook_random (from the 'textbook_selection' work directory)"):
        assert missing in out.stderr
    out = release_cli("--work", f"texbook={works['textbook']}", "--dest", str(dest))
    assert out.returncode == 2 and "no configurations known for pipeline 'texbook'" in out.stderr
    out = release_cli(*work_args(works), "--config", "textbook_nope", "--dest", str(dest))
    assert out.returncode == 2 and "['textbook_nope'] are not in the catalogue" in out.stderr
    out = release_cli(*work_args(works), "--config", "textbook", "--default", "megascience", "--dest", str(dest))
    assert out.returncode == 2 and "default configuration 'megascience' is not among" in out.stderr
    assert not dest.exists() and not list(tmp_path.glob(".out-*"))      # nothing half-written


def test_dest_is_not_replaced_without_overwrite(built, tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    out = release_cli(*work_args(built["works"]), "--config", "textbook", "--dest", str(dest))
    assert out.returncode == 2 and "is not empty (notes.txt); pass --overwrite" in out.stderr
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]
    out = release_cli(*work_args(built["works"]), "--config", "textbook", "--dest", str(dest), "--overwrite")
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "RELEASE.json", "cards", "data", "manifest.json"]
    record = json.loads((dest / "RELEASE.json").read_text())
    assert record["sha"] is None and record["configs"] == {"textbook": {"rows": 48, "shards": 1}}


def test_from_config_file(built, tmp_path):
    spec = {"works": {name: str(Path(w).relative_to(built["root"].parent)) for name, w in built["works"].items()},
            "dest": "released", "configs": ["textbook", "natural_reasoning_dc_random"], "tag": "v0.1",
            "git": True, "message": "from a file"}
    path = built["root"].parent / f"release-{tmp_path.name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    dest = tmp_path / "cli-dest"          # the command line overrides the file's dest
    out = release_cli("--from-config", str(path), "--dest", str(dest))
    assert out.returncode == 0, out.stderr
    record = json.loads((dest / "RELEASE.json").read_text())
    assert record["tag"] == "v0.1" and record["message"] == "from a file" and len(record["sha"]) == 40
    assert sorted(record["configs"]) == ["natural_reasoning_dc_random", "textbook"]
    path.write_text(yaml.safe_dump({**spec, "publsh": {"repo": "a/b"}}))
    out = release_cli("--from-config", str(path), "--dest", str(tmp_path / "x"))
    assert out.returncode == 2 and "unknown key(s) ['publsh']" in out.stderr
    path.write_text(yaml.safe_dump({"dest": "x"}))
    out = release_cli("--from-config", str(path))
    assert out.returncode == 2 and "`works` must map pipeline names to work directories" in out.stderr


def test_publish_arguments(built, tmp_path, monkeypatch):
    args = [*work_args(built["works"]), "--config", "textbook", "--dest", str(tmp_path / "out")]
    out = release_cli(*args, "--publish", "acme/megascience")
    assert out.returncode == 2 and "--publish needs --tag" in out.stderr
    out = release_cli(*args, "--publish", "megascience", "--tag", "v1.0")
    assert out.returncode == 2 and "expected a Hub repo id ORG/NAME" in out.stderr
    monkeypatch.delenv("MEGASCIENCE_TEST_NO_TOKEN", raising=False)
    out = release_cli(*args, "--publish", "acme/megascience", "--tag", "v1.0", "--token-env", "MEGASCIENCE_TEST_NO_TOKEN")
    assert out.returncode == 2 and "the environment variable MEGASCIENCE_TEST_NO_TOKEN is not set" in out.stderr
    out = release_cli(*args, "--endpoint", "http://127.0.0.1:9")
    assert out.returncode == 2 and "only apply with --publish" in out.stderr
    out = release_cli(*args, "--tag", "v1.0 final")
    assert out.returncode == 2 and "--tag 'v1.0 final'" in out.stderr
    assert not (tmp_path / "out").exists()


def test_publish_to_an_unreachable_endpoint_fails_after_writing_the_folder(built, tmp_path, monkeypatch):
    with socket.socket() as s:             # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("MEGASCIENCE_TEST_TOKEN", "hf_test")
    dest = tmp_path / "out"
    out = release_cli(*work_args(built["works"]), "--config", "textbook", "--dest", str(dest), "--tag", "v1.0",
                      "--publish", "acme/megascience", "--endpoint", f"http://127.0.0.1:{port}",
                      "--token-env", "MEGASCIENCE_TEST_TOKEN")
    assert out.returncode == 1 and "release failed" in out.stderr
    assert (dest / "manifest.json").is_file() and not (dest / "RELEASE.json").exists()


def test_a_configuration_without_rows_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from release_fixtures import book_rows, run, textbook_pipeline

    rows = book_rows(8)
    rows = rows.set_column(rows.schema.get_field_index("answer"), "answer", pa.array([" "] * 8))  # finalize drops all
    (tmp_path / "sources").mkdir()
    pq.write_table(rows, tmp_path / "sources" / "part-0.parquet")
    manifest = run(textbook_pipeline(tmp_path, "sources/*.parquet"), tmp_path / "work")
    assert manifest["output_rows"] == 0
    out = release_cli("--work", f"textbook={tmp_path / 'work'}", "--dest", str(tmp_path / "out"))
    assert out.returncode == 2 and "configuration 'textbook': no rows to write" in out.stderr
    assert not (tmp_path / "out").exists()

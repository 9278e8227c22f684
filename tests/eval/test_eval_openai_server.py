"""megascience-eval against an OpenAI-compatible server (a loopback /v1/chat/completions that answers with
the scripted responder): the paper's settings reach the server, and the score is exactly the known 70 %."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from eval_responder import answer
from eval_testlib import N, write_synthetic
from megascience_eval import cli


@pytest.fixture()
def server():
    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bodies.append(body)
            text = answer(SimpleNamespace(messages=body["messages"]))
            raw = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"],
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                           "finish_reason": "stop"}],
                              "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split())}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_address[1]}/v1", bodies=bodies)
    httpd.shutdown()


def test_openai_compatible_server_scores_the_known_fraction(tmp_path, server):
    registry = write_synthetic(tmp_path / "bench")
    work = tmp_path / "work"
    assert cli.main(["run", "--registry", str(registry), "--benchmarks", "synthetic", "--work", str(work),
                     "--backend", "openai", "--model", "Qwen/Qwen2.5-7B-Instruct", "--revision", "test-deploy",
                     "--option", f"base_url={server.url}", "--option", "concurrency=4"]) == 0
    assert len(server.bodies) == 2 * N
    assert {(b["temperature"], b["top_p"], b["max_tokens"], b["n"]) for b in server.bodies} == {(0.0, 1.0, 10240, 1)}
    scores = json.loads((work / "scores.json").read_text())
    assert [scores["subparts"][e]["accuracy"] for e in ("sums", "mc")] == [70.0, 70.0]
    report = (work / "eval_report.md").read_text()
    # the model id names a model the paper reports: its published column is shown beside the run
    assert "Qwen2.5-7B-Instruct (paper)" in report and "| GSM8K | 70.00 | 91.96 |" in report

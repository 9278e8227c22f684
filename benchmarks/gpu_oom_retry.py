"""Check on a GPU that the transformers backend's plain path recovers from running out of memory.

A random-weight model is loaded, a ballast tensor takes all but --leave-gb of the card's free memory, and a
batch too large for what is left is generated with plain `generate`. The backend must halve the batch until it
fits and finish every request (no errors, every reply --max-tokens long, EOS ignored). Before the fix in
`TransformersBackend._generate_batch` the retries ran while the failed attempt's KV cache was still alive,
and on an H200 every request of an 8B model ended in an error.

    python benchmarks/gpu_oom_retry.py --tokenizer .gpu/common/smollm2-tok --model llama-8b --leave-gb 12
    python benchmarks/gpu_oom_retry.py --smoke        # tiny, on CPU: the script runs (no ballast, no OOM)
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="llama-8b", help="dummy config (DUMMY_CONFIGS name)")
    ap.add_argument("--tokenizer", help="tokenizer directory (default: the dummy config's)")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--prompt-words", type=int, default=1500)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--leave-gb", type=float, default=12.0, help="GPU memory left free beside the ballast")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.smoke:
        args.model, args.requests, args.prompt_words, args.max_tokens = "tiny-llama", 4, 20, 4

    import torch

    from megascience_build.backends.base import GenerationRequest, SamplingParams
    from megascience_build.backends.transformers_backend import TransformersBackend

    cuda = torch.cuda.is_available()
    backend = TransformersBackend(args.model, dummy=True, config=args.model, tokenizer=args.tokenizer,
                                  device="cuda" if cuda else "cpu", ignore_eos=True,
                                  max_batch_size=args.requests, generation_path="plain")
    ballast_gb = 0.0
    if cuda:
        free, _ = torch.cuda.mem_get_info()
        ballast_gb = max(0.0, free / 1e9 - args.leave_gb)
        ballast = torch.empty(int(ballast_gb * 1e9), dtype=torch.uint8, device="cuda")  # noqa: F841 (held)
        torch.cuda.reset_peak_memory_stats()
    requests = [GenerationRequest(({"role": "user", "content": f"{i} " + "word " * args.prompt_words},),
                                  SamplingParams(max_tokens=args.max_tokens)) for i in range(args.requests)]
    start = time.perf_counter()
    results = backend.generate(requests)
    seconds = time.perf_counter() - start
    errors = [r for r in results if r.finish_reason == "error"]
    short = [r for r in results if r.finish_reason != "error" and r.completion_tokens != args.max_tokens]
    report = {"model": args.model, "device": torch.cuda.get_device_name() if cuda else "cpu",
              "requests": len(results), "prompt_tokens": results[0].prompt_tokens, "max_tokens": args.max_tokens,
              "ballast_gb": round(ballast_gb, 1), "leave_gb": args.leave_gb, "oom_splits": backend.oom_splits,
              "errors": len(errors), "first_error": errors[0].error[:200] if errors else None,
              "wrong_length": len(short), "seconds": round(seconds, 2),
              "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 1e9, 1) if cuda else None}
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    ok = not errors and not short and (backend.oom_splits > 0 or not cuda)
    print("OK: every request finished after the batch was halved" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

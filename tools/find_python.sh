# Sourced by the launchers (dist_train.sh, dist_test.sh, slurm_train.sh):
# sets PYTHON to the interpreter that runs tools/train.py and tools/test.py.
# PYTHON from the environment wins; else the project's .venv (what `make`
# creates) when it exists; else `python` on PATH.
# Usage: DIR=$(dirname "$0"); . "$DIR/find_python.sh"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$DIR/../.venv/bin/python" ]; then
        PYTHON="$DIR/../.venv/bin/python"
    else
        PYTHON=python
    fi
fi

# Fail with what to do, not with "No module named 'torch'" from each process.
require_torch() {
    if ! "$PYTHON" -c "import torch" >/dev/null 2>&1; then
        echo "$(basename "$0"): '$PYTHON' cannot import torch." \
            "Run \`make setup\` in the repository (creates .venv, used" \
            "automatically) or set" \
            "PYTHON to the interpreter of an environment with torch, mmdet" \
            "and mmkd_plugin." >&2
        exit 1
    fi
}

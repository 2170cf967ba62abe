#!/usr/bin/env bash
# Create/refresh the project's virtualenv (CPU set-up). Idempotent: each step
# is skipped when what it installs is already importable.
# Usage: tools/setup_env.sh [VENV_DIR]
set -euo pipefail
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

if [ ! -x "$VENV/bin/python" ]; then
    # Keep a torch that is already installed for this Python.
    if "$PYTHON" -c "import torch" 2>/dev/null; then
        "$PYTHON" -m venv --system-site-packages "$VENV"
    else
        "$PYTHON" -m venv "$VENV"
    fi
fi
PY="$VENV/bin/python"
PIP="$PY -m pip --disable-pip-version-check"
have() { "$PY" -c "$1" >/dev/null 2>&1; }

# mmpretrain needs torchvision, and PyPI's torchvision 0.28.0 loads only
# beside torch 2.13.0's CUDA build (the CPU build on this machine's disk
# lacks the CUDA libraries its ops link to). The CUDA build runs on
# CPU-only machines too; pinned by hash, from PyPI.
TORCH_CUDA_WHEEL="https://files.pythonhosted.org/packages/01/79/1f2d34ad7034ee1c7ffc1cf8bf0f8213af2a81df6ecdb3997ecec107c09d/torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl#sha256=60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7"
have "import torch, torchvision.ops as ops; ops.nms(torch.zeros(0, 4), torch.zeros(0), 0.5)" || \
    $PIP install "torch @ $TORCH_CUDA_WHEEL" torchvision==0.28.0
# numpy < 2 for mmdet 3.3; the build tools mmcv 2.1.0's source build needs.
have "import numpy, sys; sys.exit(numpy.__version__ >= '2')" || \
    $PIP install "numpy<2"
have "import ninja, wheel, setuptools, sys; sys.exit(setuptools.__version__ >= '70')" || \
    $PIP install "setuptools<70" wheel ninja
if ! have "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '2.1.0')"; then
    # No wheel matches this torch: build with ops (~11 min on 2 cores the
    # first time; pip caches the built wheel, so later installs take seconds).
    MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
        $PIP install --no-build-isolation mmcv==2.1.0
fi
$PIP install -q "mmengine>=0.10.0,<0.11" mmdet==3.3.0 mmpretrain==1.2.0 \
    pycocotools scikit-learn matplotlib pytest pytest-xdist \
    pytest-timeout "numpy<2"
$PIP install -q --no-deps -e .
# Editable installs skip data files: add the `mmkd_plugin::` config hook.
"$PY" -m _mmkd_plugin_scope
"$PY" -c "import mmkd_plugin, mmdet, mmcv.ops; print('mmkd_plugin', mmkd_plugin.__version__, '| mmdet', mmdet.__version__, '| mmcv', mmcv.__version__)"

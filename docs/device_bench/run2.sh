# Device benchmark: tools/benchmark.py on the classifier, CrossKD, BCKD and LD configs.
export PYTHONUNBUFFERED=1 MAX_JOBS=4 JSON_DIR=/tmp/json
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
nproc; python3 -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__)"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/whl .gpu/whl/*.whl || exit 1
export PYTHONPATH=$PWD/.gpu/site:/tmp/whl:/tmp/focal_build:$PWD
(cd .gpu/focal && python3 build.py > $OUT/focal_build.log 2>&1; echo "build rc=$?" >> $OUT/focal_build.log) &
BUILD=$!
t0=$(date +%s)
python3 .gpu/bench_all.py C .gpu/specs2.txt > $OUT/C.log 2>&1
echo "A took $(( $(date +%s) - t0 )) s"; grep -E "^===|FAILED|^median|^ratio|^host" $OUT/C.log
wait $BUILD; tail -3 $OUT/focal_build.log
t0=$(date +%s)
python3 .gpu/bench_all.py D .gpu/specs2.txt > $OUT/D.log 2>&1
echo "B took $(( $(date +%s) - t0 )) s"; grep -E "^===|FAILED|^median|^ratio|^host" $OUT/D.log
python3 .gpu/table.py $JSON_DIR | tee $OUT/table.md; tar cf $OUT/json.tar -C /tmp json

# Device benchmark, sent as `bash .gpu/run.sh SPECS GROUP FOCAL_GROUP`:
# tools/benchmark.py on the SPECS lines of GROUP (no mmcv op needed) while
# mmcv's focal loss kernel builds, then on those of FOCAL_GROUP.
# Run 1: `.gpu/specs.txt A B`; run 2: `.gpu/specs2.txt C D`.
SPECS=$1 GROUP=$2 FOCAL_GROUP=$3
export PYTHONUNBUFFERED=1 MAX_JOBS=4 JSON_DIR=/tmp/json
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
nproc; python3 -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__)"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/whl .gpu/whl/*.whl || exit 1
export PYTHONPATH=$PWD/.gpu/site:/tmp/whl:/tmp/focal_build:$PWD
(cd .gpu/focal && python3 build.py > $OUT/focal_build.log 2>&1; echo "build rc=$?" >> $OUT/focal_build.log) &
BUILD=$!
for group in $GROUP $FOCAL_GROUP; do
  [ $group = "$FOCAL_GROUP" ] && { wait $BUILD; tail -3 $OUT/focal_build.log; }
  t0=$(date +%s)
  python3 .gpu/bench_all.py $group $SPECS > $OUT/$group.log 2>&1
  echo "$group took $(( $(date +%s) - t0 )) s"; grep -E "^===|FAILED|^median|^ratio|^host" $OUT/$group.log
done
python3 .gpu/table.py $JSON_DIR | tee $OUT/table.md; tar cf $OUT/json.tar -C /tmp json

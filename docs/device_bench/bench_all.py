"""Run tools/benchmark.py on several configs in one process; each config's
medians go to OUT/<name>.json; a failure is printed and the loop goes on."""
import json, os, sys, time, traceback
sys.path.insert(0, 'tools')
import benchmark  # noqa: E402

out = os.environ['JSON_DIR']; os.makedirs(out, exist_ok=True)
group = sys.argv[1]
specs = [line.split() for line in open(sys.argv[2]) if line.strip() and not line.startswith('#')]
for spec in specs:
    if spec[0] != group:
        continue
    config, extra = spec[1], spec[2:]
    name = os.path.basename(config)[:-3] + ('_' + '_'.join(e.strip('-') for e in extra if e.startswith('--amp') or e.startswith('--teacher')) if any(e.startswith(('--amp', '--teacher')) for e in extra) else '')
    t0 = time.time()
    try:
        benchmark.main([config, '--json-out', f'{out}/{name}.json'] + extra)
    except Exception:
        traceback.print_exc()
        print(f'FAILED {config}', flush=True)
    print(f'=== {config} {time.time() - t0:.1f} s', flush=True)

"""Markdown table of the OUT/*.json medians."""
import glob, json, os, sys
rows = []
for path in sorted(glob.glob(os.path.join(sys.argv[1], '*.json'))):
    r = json.load(open(path))
    ms, pk = r['median_ms'], r['peak_mb']
    hk = [k for k in ('crosskd_head', 'teacher_head') if k in ms]
    ck = f"{ms[hk[0]]:.1f} | {r['rest_ratio']:.3f}" if hk else '- | -'
    sy = ' / '.join(str(v) for v in r['syncs'].values()) if 'syncs' in r else '-'
    print(f"| `{os.path.basename(r['config'])}` | {ms['student_step']:.1f} | {ms['teacher_fwd']:.1f} | "
          f"{ms['distill_step']:.1f} | {r['ratio']:.3f} | {ck} | "
          f"{pk['student_step']:.0f} / {pk['teacher_fwd']:.0f} / {pk['distill_step']:.0f} | {sy} |")

# Copyright (c) mmkd_plugin contributors.
"""Export the student of a distillation checkpoint as a plain checkpoint.

Usage::

    python tools/export_student.py work_dirs/x/epoch_12.pth student.pth

The output loads strictly into the student's own config (an mmdet detector,
e.g. ``mmdet::retinanet/retinanet_r18_fpn_1x_coco.py``, or an mmpretrain
classifier, e.g. ``configs/classification/digits/resnet18-w4_digits.py``)
and predicts the same.
"""
import argparse

from mmkd_plugin.utils.export import export_student


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'checkpoint',
        help='DistillationDetector or DistillationClassifier checkpoint')
    parser.add_argument('out', help='output path of the student checkpoint')
    args = parser.parse_args()
    try:
        count = export_student(args.checkpoint, args.out)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f'export_student: {err}')
    print(f'wrote {count} student tensors to {args.out}')


if __name__ == '__main__':
    main()

# Student baseline of the Faster R-CNN family of the efficacy benchmark
# (tools/demo.py, docs/efficacy.md): the teacher's config
# (faster-rcnn_r18_digits.py) with a ResNet-18 at a quarter of the width
# (base_channels 16; `student_widths` in _base_/digit_scenes.py). Same
# FPN and head widths as the teacher, same data and schedule.
# Run: python tools/train.py configs/faster-rcnn_r18-w16_digits.py
_base_ = './faster-rcnn_r18_digits.py'

model = {{_base_.student_widths}}

# Student baseline of the RetinaNet family of the efficacy benchmark
# (tools/demo.py, docs/efficacy.md): the teacher's config
# (retina_r18-w32_digits.py) with a ResNet-18 at an eighth of the standard
# width (base_channels 8) and 32-channel heads (`digit_retina` in
# _base_/digit_scenes.py). Same 64-channel FPN outputs as the teacher (the
# features distillation compares), same data and schedule.
# Run: python tools/train.py configs/retina_r18-w8_digits.py
_base_ = './retina_r18-w32_digits.py'

model = {{_base_.digit_retina.student}}

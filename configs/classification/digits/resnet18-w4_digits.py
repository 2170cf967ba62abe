# Student baseline of the digit-crops classification proxy: the teacher's
# config (resnet18_digits.py) with a quarter of the teacher's width (stem and
# first stage 4 channels, last stage 32: about 1/16 of the teacher's
# parameters and compute). Same data and schedule.
# Run: python tools/train.py \
#          configs/classification/digits/resnet18-w4_digits.py
_base_ = './resnet18_digits.py'

model = dict(
    backbone=dict(stem_channels=4, base_channels=4),
    head=dict(in_channels=32))

# DKD (Zhao et al., CVPR 2022) on ImageNet, teacher ResNet-34 -> ResNet-18.
# Published: 69.76 -> 71.70 top-1. Not run here.
# Settings: alpha 0.5, beta 0.5, T 1, one warm-up epoch, CE 1, as
# mdistiller's ImageNet DKD config (methods.md gives only the CIFAR
# defaults alpha 1, beta 8, T 4, warm-up 20; unverified).
_base_ = './_base_/r34_r18_in1k.py'

model = dict(distill=[
    dict(student='head',
         loss=dict(type='DKDLoss', alpha=0.5, beta=0.5, temperature=1.0,
                   warmup_epochs=1))
])

# KD (Hinton et al., 2015) on ImageNet, teacher ResNet-34 -> ResNet-18.
# Published (DKD paper, Table): 69.76 -> 71.03 top-1. Not run here.
# Settings: T = 1, 0.5 CE + 0.5 KD, as mdistiller's ImageNet KD config
# (not in methods.md; unverified).
_base_ = './_base_/r34_r18_in1k.py'

model = dict(
    student_loss_weight=0.5,
    distill=[
        dict(student='head',
             loss=dict(type='KDLoss', temperature=1.0, loss_weight=0.5))
    ])

# WSLD (Zhou et al., ICLR 2021) on ImageNet, teacher ResNet-34 -> ResNet-18,
# mmrazor's settings: tau 2, loss weight 2.5, CE 1.
# Published (mmrazor): 69.90 -> 71.54 top-1. Not run here.
_base_ = './_base_/r34_r18_in1k.py'

model = dict(distill=[
    dict(student='head',
         loss=dict(type='WSLDLoss', temperature=2.0, loss_weight=2.5))
])

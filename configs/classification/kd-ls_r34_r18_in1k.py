# KD with logit standardisation (Sun et al., CVPR 2024) on ImageNet, teacher
# ResNet-34 -> ResNet-18: base temperature 2, KD weight 9, CE 1.0 (the
# authors' ImageNet config). Published: 71.45 top-1, best epoch of the
# released log (the paper's table value was not read). Not run here.
_base_ = './_base_/r34_r18_in1k.py'

model = dict(distill=[
    dict(student='head',
         loss=dict(type='KDLoss', temperature=2.0, loss_weight=9.0,
                   logit_standardization=True))
])

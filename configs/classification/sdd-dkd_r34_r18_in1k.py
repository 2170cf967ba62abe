# SD-DKD (Wei et al., CVPR 2024) on ImageNet, teacher ResNet-34 -> ResNet-18:
# scales [1, 2] on the last stage through each model's head.fc; DKD alpha 1,
# beta 0.5, T 1, one warm-up epoch, CE 1 (the authors' script).
# Published: 72.02 top-1 (a note in the authors' scripts). Not run here.
_base_ = './_base_/r34_r18_in1k.py'

model = dict(distill=[
    dict(student='backbone',
         loss=dict(type='SDDLoss', scales=(1, 2), loss='dkd', alpha=1.0,
                   beta=0.5, temperature=1.0, warmup_epochs=1))
])

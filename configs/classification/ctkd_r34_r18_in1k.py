# CTKD (Li et al., AAAI 2023) with KD on ImageNet, teacher ResNet-34 ->
# ResNet-18: learnt global temperature, cosine curriculum over 5 epochs,
# CE 1 + KD 1; 120 epochs, lr 0.1 x0.1 at 30/60/90 (the authors' schedule).
# Published: KD 70.83 -> KD + CTKD 71.32 top-1 (their baselines: teacher
# 73.96, student 70.26). Not run here.
_base_ = './_base_/r34_r18_in1k.py'

model = dict(distill=[
    dict(student='head',
         loss=dict(type='CTKDLoss', loss=dict(type='KDLoss'),
                   curriculum_epochs=5))
])
train_cfg = dict(max_epochs=120)

# KD with logit standardisation (Sun et al., CVPR 2024) on the digit-crops
# proxy: the KD config's teacher, student and data with the paper's CIFAR
# defaults (methods.md): base temperature 2, CE 0.1, except the KD weight:
# 0.9 (the KD config's), not 9. It was chosen on the holdout split at 40
# epochs (seed 0: 92.23 top-1 with 0.9, 91.42 with 9, the baseline 91.77;
# docs/efficacy.md, "Holdout checks at 40 epochs"). The 20-epoch table
# there ran with 9.
#
# As in the DIST config, the student's classifier starts from PyTorch's
# default Linear init (the authors' CIFAR models are nn.Linear), not
# mmpretrain's Normal(std=0.01): standardising logits of std 0.035 divides
# by that std, so the first KD gradient had norm 42 (84 times plain KD's;
# 7.6 with the Linear init; measured with the trained teacher on one batch
# of 64), and with mmpretrain's init the student reached 73.05 top-1 at 20
# epochs (seed 0), far below the 89.45 baseline (docs/efficacy.md).
_base_ = './kd_resnet18_resnet18-w4_digits.py'

model = dict(
    student=dict(head=dict(init_cfg=dict(
        type='Kaiming', layer='Linear', a=5**0.5, mode='fan_in',
        nonlinearity='leaky_relu', distribution='uniform'))),
    student_loss_weight=0.1,
    distill=[
        dict(student='head',
             loss=dict(type='KDLoss', temperature=2.0, loss_weight=0.9,
                       logit_standardization=True))
    ])

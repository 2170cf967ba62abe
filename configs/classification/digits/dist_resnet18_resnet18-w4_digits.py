# DIST (Huang et al., NeurIPS 2022) on the digit-crops proxy: the KD config's
# teacher, student and data; beta = gamma = 1, CE 1, with tau 1 (the
# authors' ImageNet setting) and L_DIST weighted 0.5 instead of their CIFAR
# tau 4 and weight 2. Chosen on the holdout split at 40 epochs (seed 0,
# three settings tried in turn: tau 4 weight 2 90.69 top-1, tau 1 weight 2
# 91.16, tau 1 weight 0.5 92.25; the baseline 91.77; docs/efficacy.md,
# "Holdout checks at 40 epochs"). The 20-epoch table there ran with tau 4
# and weight 2.
#
# One change for this proxy: the student's classifier starts from PyTorch's
# default Linear init (as the authors' CIFAR models do), not mmpretrain's
# Normal(std=0.01). With 32 features and 10 classes that init gives logits
# of std 0.02, where DIST's Pearson terms, invariant to the logits' scale,
# have gradients of norm ~200 (measured: 199 at the first step, against ~45
# with the default init); SGD at lr 0.05 then wrecks the student, which
# stays at chance (docs/efficacy.md). mmengine's Kaiming init with
# a = sqrt(5), fan_in, uniform is PyTorch's default weight init (the bias
# starts at 0 instead of uniform).
_base_ = './kd_resnet18_resnet18-w4_digits.py'

model = dict(
    student=dict(head=dict(init_cfg=dict(
        type='Kaiming', layer='Linear', a=5**0.5, mode='fan_in',
        nonlinearity='leaky_relu', distribution='uniform'))),
    student_loss_weight=1.0,
    distill=[
        dict(student='head',
             loss=dict(type='DISTLoss', temperature=1.0, inter_weight=1.0,
                       intra_weight=1.0, loss_weight=0.5))
    ])

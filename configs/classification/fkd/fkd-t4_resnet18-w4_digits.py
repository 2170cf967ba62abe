# FKD on the digit-crops proxy with the stored labels softened at temperature
# 4, KD's temperature in kd_resnet18_resnet18-w4_digits.py: an extension, not
# the FKD paper's recipe (T = 1, fkd_resnet18-w4_digits.py). The store holds
# all 10 probabilities (--topk 10), so SoftLabelLoss's softened label is
# exactly the teacher's softmax at T = 4 and its gradients are KD's.
#   python tools/make_soft_labels.py \
#       configs/classification/digits/resnet18_digits.py \
#       work_dirs/resnet18_digits/epoch_20.pth \
#       data/digit_crops/fkd_labels_k10 --crops 20 --topk 10
_base_ = './fkd_resnet18-w4_digits.py'

model = dict(
    head=dict(loss=dict(_delete_=True, type='SoftLabelLoss',
                        temperature=4.0)))

_label_root = '{{$DIGIT_CROPS_ROOT:data/digit_crops}}'.rstrip('/') + \
    '/fkd_labels_k10'

train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='FKDReplayCrop', label_root=_label_root, num_classes=10,
             scale=32, crop_ratio_range=(0.64, 1.0), flip_prob=0.0),
        dict(type='PackInputs'),
    ]))

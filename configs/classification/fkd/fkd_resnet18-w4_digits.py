# FKD (Shen and Xing, ECCV 2022) on the digit-crops proxy: the student of
# digits/resnet18-w4_digits.py trained on the stored soft labels of the teacher
# (digits/resnet18_digits.py); no teacher is built. One replayed crop per loaded
# image, so a step costs what a plain step costs and the schedule (20
# epochs) is the baseline's. Make the store first, from the teacher config
# (its crops follow the RandomResizedCrop of the shared train pipeline):
#   python tools/make_soft_labels.py \
#       configs/classification/digits/resnet18_digits.py \
#       work_dirs/resnet18_digits/epoch_20.pth \
#       data/digit_crops/fkd_labels --crops 20 --topk 5
# then train this config. The store sits in the dataset root
# (DIGIT_CROPS_ROOT, default data/digit_crops) under fkd_labels/.
_base_ = '../digits/resnet18-w4_digits.py'

_label_root = '{{$DIGIT_CROPS_ROOT:data/digit_crops}}'.rstrip('/') + \
    '/fkd_labels'

model = dict(
    head=dict(loss=dict(type='CrossEntropyLoss', use_soft=True,
                        loss_weight=1.0)))

train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='FKDReplayCrop', label_root=_label_root, num_classes=10,
             scale=32, crop_ratio_range=(0.64, 1.0), flip_prob=0.0),
        dict(type='PackInputs'),
    ]))

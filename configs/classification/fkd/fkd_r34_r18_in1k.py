# FKD (Shen and Xing, ECCV 2022) on ImageNet: a plain ResNet-18 trained on
# the stored soft labels of the ResNet-34 teacher; no teacher in training.
# Not run here. Make the labels first (the crops follow the
# RandomResizedCrop / RandomFlip of the KD config's train pipeline, which
# are the ones checked below):
#   torchrun --nproc-per-node 8 tools/make_soft_labels.py \
#       configs/classification/kd_r34_r18_in1k.py \
#       https://download.openmmlab.com/mmclassification/v0/resnet/resnet34_8xb32_in1k_20210831-f257d4e6.pth \
#       data/imagenet/fkd_r34_m500_k5 --crops 500 --topk 5 --fp16
# Deviations from the authors: one replayed crop per loaded image (they put
# 4 crops of each decoded image in one step) and the student's own schedule
# (100 epochs, step lr), not their 300 counted epochs with cosine lr.
_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

fkd_label_root = 'data/imagenet/fkd_r34_m500_k5'

model = dict(
    head=dict(loss=dict(type='CrossEntropyLoss', use_soft=True,
                        loss_weight=1.0)))

train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='FKDReplayCrop', label_root=fkd_label_root,
             num_classes=1000, scale=224, crop_ratio_range=(0.08, 1.0),
             aspect_ratio_range=(3. / 4., 4. / 3.), flip_prob=0.5,
             label_type='marginal_smoothing'),
        dict(type='PackInputs'),
    ]))

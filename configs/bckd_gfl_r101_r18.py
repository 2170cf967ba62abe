# BCKD (Yang et al., ICCV 2023, arXiv 2308.14286): GFL R101 ms-2x teacher
# (44.7) -> GFL R18, COCO 1x: configs/bckd_gfl_r101_r50.py's terms and
# weights with the student's backbone swapped for ResNet-18 (data, schedule
# and runtime of mmdet's GFL R50 1x config, as configs/ld_gfl_r101_r18.py).
# Published (COCO val, BCKD README): GFL R18 35.8 -> 38.6.
_base_ = './bckd_gfl_r101_r50.py'

model = dict(
    student=dict(
        backbone=dict(
            depth=18,
            init_cfg=dict(
                type='Pretrained', checkpoint='torchvision://resnet18')),
        neck=dict(in_channels=[64, 128, 256, 512])))

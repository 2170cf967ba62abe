# Copyright (c) mmkd_plugin contributors.
from .ctkd_loss import CTKDLoss
from .cwd_loss import CWDLoss
from .dist_loss import DISTLoss
from .dkd_loss import DKDLoss
from .fgd_loss import FGDLoss
from .fitnet_loss import FitNetLoss
from .giou_kd_loss import GIoUKDLoss
from .kd_loss import KDLoss
from .ld_loss import LDLoss
from .mgd_loss import MGDLoss
from .pkd_loss import PKDLoss
from .quality_focal_kd_loss import QualityFocalKDLoss
from .review_kd_loss import ReviewKDLoss
from .sdd_loss import SDDLoss
from .soft_label_loss import SoftLabelLoss
from .wsld_loss import WSLDLoss

__all__ = [
    'CTKDLoss', 'CWDLoss', 'DISTLoss', 'DKDLoss', 'FGDLoss', 'FitNetLoss',
    'GIoUKDLoss', 'KDLoss', 'LDLoss', 'MGDLoss', 'PKDLoss',
    'QualityFocalKDLoss', 'ReviewKDLoss', 'SDDLoss', 'SoftLabelLoss',
    'WSLDLoss'
]

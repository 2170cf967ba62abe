# Copyright (c) mmkd_plugin contributors.
from .cwd_loss import CWDLoss
from .fgd_loss import (FGDLoss, fgd_attention, fgd_masks,
                       fgd_masks_from_data_samples)
from .fitnet_loss import FitNetLoss
from .mgd_loss import MGDLoss
from .pkd_loss import PKDLoss

__all__ = [
    'CWDLoss', 'FGDLoss', 'FitNetLoss', 'MGDLoss', 'PKDLoss', 'fgd_attention',
    'fgd_masks', 'fgd_masks_from_data_samples'
]

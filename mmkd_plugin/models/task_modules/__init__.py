# Copyright (c) mmkd_plugin contributors.
from .vlr import atss_iou_thresholds, pairwise_diou, vlr_weights

__all__ = ['atss_iou_thresholds', 'pairwise_diou', 'vlr_weights']

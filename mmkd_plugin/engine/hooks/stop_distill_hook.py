# Copyright (c) mmkd_plugin contributors.
"""Switch distillation off for the last epochs of a training run."""
from mmengine.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop

from ...models.distillers import BaseDistiller


@HOOKS.register_module()
class StopDistillHook(Hook):
    """Train the student without its teacher from epoch ``stop_epoch`` on.

    The second stage of the RTMDet distillation recipe (mmyolo / mmrazor,
    after DAMO-YOLO): the student distils during epochs
    ``0 .. stop_epoch - 1`` and then fine-tunes alone. At the start of
    every training epoch whose index ``runner.epoch`` (0-based) is at least
    ``stop_epoch``, the hook calls
    :meth:`BaseDistiller.stop_distillation`: from then on the
    teacher no longer runs and the distillation terms leave the loss dict
    and the logs. The decision is taken from ``runner.epoch`` at every
    epoch, so a run resumed past ``stop_epoch`` stops again (the same
    semantic as mmrazor's ``StopDistillHook(stop_epoch)``).

    Checked before the first iteration (``ValueError``): the model is a
    distillation model (possibly inside a model wrapper), the
    train loop counts epochs, ``stop_epoch < max_epochs``, no student head
    distils inside its own loss (LD, DKD, KD heads: refused, they have no
    switch), and under DDP the wrapper has ``find_unused_parameters=True``
    when the distillation losses have parameters (align convs), which get
    no gradient once distillation stops.

    Args:
        stop_epoch (int): First epoch (0-based ``runner.epoch``) trained
            without distillation, e.g. 280 of 300.
    """

    priority = 'NORMAL'

    def __init__(self, stop_epoch: int) -> None:
        if isinstance(stop_epoch, bool) or not isinstance(stop_epoch, int) \
                or stop_epoch < 1:
            raise ValueError('StopDistillHook: stop_epoch must be an int >= '
                             f'1 (the first epoch without distillation), '
                             f'got {stop_epoch!r}.')
        self.stop_epoch = stop_epoch

    def before_train(self, runner) -> None:
        """Refuse a model, loop or schedule the hook cannot serve."""
        model = _unwrap(runner.model)
        if not isinstance(model, BaseDistiller):
            raise ValueError(
                'StopDistillHook: the model is a '
                f'{type(model).__name__}, not a DistillationDetector or '
                'DistillationClassifier; '
                'remove the hook or use a distillation config.')
        if isinstance(runner.train_loop, IterBasedTrainLoop):
            raise ValueError(
                'StopDistillHook counts epochs but train_cfg is '
                'iteration-based (IterBasedTrainLoop); use an '
                'EpochBasedTrainLoop (train_cfg=dict(by_epoch=True, ...)).')
        if self.stop_epoch >= runner.max_epochs:
            raise ValueError(
                f'StopDistillHook: stop_epoch={self.stop_epoch} is not '
                f'below max_epochs={runner.max_epochs}, so distillation '
                'would never stop; lower stop_epoch or remove the hook.')
        heads = model.self_distilling_heads
        if heads:
            raise ValueError(
                f'StopDistillHook: the student heads {heads} distil inside '
                'their own loss (TeacherLinkMixin) and cannot be switched '
                'off; remove the hook.')
        _check_ddp_unused_parameters(runner.model, model)

    def before_train_epoch(self, runner) -> None:
        """Stop distilling once ``runner.epoch >= stop_epoch``."""
        model = _unwrap(runner.model)
        if runner.epoch >= self.stop_epoch and not model.distill_stopped:
            model.stop_distillation()
            runner.logger.info(
                f'StopDistillHook: distillation stopped at epoch '
                f'{runner.epoch} (stop_epoch={self.stop_epoch}); the student '
                'trains on its detection losses alone.')


def _unwrap(model):
    """The model inside a DDP-style wrapper, or the model itself."""
    return model.module if is_model_wrapper(model) else model


def _check_ddp_unused_parameters(wrapper, model: BaseDistiller) -> None:
    """Refuse DDP without ``find_unused_parameters`` when losses have
    parameters: after the stop they get no gradient and DDP would hang or
    raise at the next iteration."""
    if wrapper is model or getattr(wrapper, 'find_unused_parameters', True):
        return
    if any(p.requires_grad for p in model.distill_losses.parameters()):
        raise ValueError(
            'StopDistillHook: the distillation losses have parameters '
            '(align convs) that get no gradient after the stop; set '
            '`find_unused_parameters = True` in the config for DDP.')

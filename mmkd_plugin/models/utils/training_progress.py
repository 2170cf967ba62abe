# Copyright (c) mmkd_plugin contributors.
"""Where training is, for losses with epoch schedules (warm-ups, curricula).

mmengine's ``RuntimeInfoHook`` writes the runner's epoch into the current
``MessageHub`` before every training epoch; losses read it here instead of
being handed the runner.
"""
from mmengine.logging import MessageHub


def current_epoch() -> int:
    """The number of the training epoch in progress, counted from 1.

    The papers count epochs from 1 (DKD's warm-up factor in epoch 1 of 20
    is 1 / 20). Outside a runner (a unit test, a build-time probe) it is 1.

    Returns:
        int: The epoch number, at least 1.
    """
    runner_epoch = MessageHub.get_current_instance().get_info('epoch', 0)
    return int(runner_epoch) + 1


def warmup_factor(warmup_epochs: float) -> float:
    """``min(epoch / warmup_epochs, 1)`` with the epoch from :func:`current_epoch`.

    Args:
        warmup_epochs (float): Length of the linear warm-up; 0 means none.

    Returns:
        float: The factor, in (0, 1].
    """
    if warmup_epochs <= 0:
        return 1.0
    return min(current_epoch() / warmup_epochs, 1.0)

# Copyright (c) mmkd_plugin contributors.
"""Where training is, for losses with epoch schedules (warm-ups, curricula).

mmengine's ``RuntimeInfoHook`` writes the runner's epoch into the current
``MessageHub`` before every training epoch; losses read it here instead of
being handed the runner.
"""
from mmengine.logging import MessageHub


def current_epoch(schedule_epochs: float = 0, owner: str = 'a loss') -> int:
    """The number of the training epoch in progress, counted from 1.

    The papers count epochs from 1 (DKD's warm-up factor in epoch 1 of 20
    is 1 / 20). Outside a runner (a unit test, a build-time probe) it is 1.

    Args:
        schedule_epochs (float): Length of the caller's epoch schedule (a
            warm-up, a curriculum). One longer than the whole training is
            refused: it would never finish, and under an iteration-based
            loop (one "epoch", the epoch never advances) it would stay at
            its first value silently.
        owner (str): Who asks, for the message.

    Returns:
        int: The epoch number, at least 1.
    """
    hub = MessageHub.get_current_instance()
    max_epochs = hub.get_info('max_epochs')
    if max_epochs is not None and schedule_epochs > max_epochs:
        raise ValueError(
            f'{owner}: its schedule of {schedule_epochs} epochs is longer '
            f'than the training ({max_epochs} epochs). Epoch schedules '
            'advance with an epoch-based train_cfg only (an iteration-based '
            'loop counts one epoch); shorten or disable the schedule.')
    return int(hub.get_info('epoch', 0)) + 1


def warmup_factor(warmup_epochs: float, owner: str = 'a loss') -> float:
    """``min(epoch / warmup_epochs, 1)``, epoch from :func:`current_epoch`.

    Args:
        warmup_epochs (float): Length of the linear warm-up; 0 means none.
        owner (str): Who asks, for the message of :func:`current_epoch`.

    Returns:
        float: The factor, in (0, 1].
    """
    if warmup_epochs <= 0:
        return 1.0
    return min(current_epoch(warmup_epochs, owner) / warmup_epochs, 1.0)

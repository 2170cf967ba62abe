# Copyright (c) mmkd_plugin contributors.
"""Load a checkpoint with an error that names the file and its argument."""
from mmengine.runner.checkpoint import _load_checkpoint


def read_checkpoint(filename: str, what: str) -> dict:
    """Load a checkpoint file, naming the file and the argument on failure.

    Args:
        filename (str): Path or URL.
        what (str): The argument it came from, e.g. ``'teacher_ckpt'``.

    Returns:
        dict: The loaded checkpoint.
    """
    try:
        return _load_checkpoint(filename, map_location='cpu')
    except FileNotFoundError as err:
        raise FileNotFoundError(f'{what} "{filename}" not found.') from err
    except Exception as err:  # torch.load's errors vary with the damage
        raise ValueError(
            f'{what} "{filename}" cannot be read as a checkpoint (a '
            f'truncated download, or not a torch checkpoint): '
            f'{type(err).__name__}: {err}') from err

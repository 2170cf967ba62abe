# Copyright (c) mmkd_plugin contributors.
"""Drawing of one digit scene: background texture, glyph sprites, placement.

Each scene is a colour image with a textured background (smooth colour
noise, a linear gradient, faint strokes) and 2..5 handwritten digits taken
from ``sklearn.datasets.load_digits()`` (8x8 glyphs bundled with
scikit-learn, no download). Digits are upscaled with bicubic interpolation
to varied sizes, tinted, and alpha-blended onto the background. Boxes may
overlap a little (IoU <= ``max_iou`` and at most half of the smaller box
covered) so every object stays identifiable.

Everything here draws from the random generator it is given and returns
pixels and ink boxes; splits, files and COCO json are
:mod:`.coco_writer`'s business. This module does not import mmdet.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Bump when the rendering changes so that existing outputs are regenerated.
GENERATOR_VERSION = 1
# Blend weight above which a glyph pixel counts as ink for the tight box.
INK_THRESHOLD = 0.25
# Placement attempts per digit before giving up on that digit.
MAX_PLACEMENT_TRIES = 100
# Glyphs drawn per requested digit before the scene keeps what it has.
MAX_GLYPH_PICKS_PER_DIGIT = 5
# A box may be covered by another box over at most this fraction of its area.
MAX_COVERED_FRACTION = 0.5

Box = Tuple[int, int, int, int]  # x0, y0, x1, y1 (inclusive ink extent)


def default_digit_size_range(image_size: int) -> Tuple[int, int]:
    """Return the default (min, max) glyph height for an image size.

    12..48 px at 128 px images, scaled linearly for other sizes.

    Args:
        image_size (int): Side of the square scene in pixels.

    Returns:
        tuple[int, int]: Minimum and maximum glyph height in pixels.
    """
    min_size = max(8, round(image_size * 12 / 128))
    max_size = max(min_size, round(image_size * 48 / 128))
    return min_size, max_size


def load_digit_glyphs() -> Tuple[np.ndarray, np.ndarray]:
    """Load the sklearn digits as float glyphs in [0, 1].

    Returns:
        tuple[np.ndarray, np.ndarray]: Glyphs of shape (1797, 8, 8) float32
        and their integer labels of shape (1797,).
    """
    from sklearn.datasets import load_digits
    digits = load_digits()
    glyphs = (digits.images / 16.0).astype(np.float32)
    return glyphs, digits.target.astype(np.int64)


def render_background(rng: np.random.Generator, image_size: int,
                      dark: bool) -> np.ndarray:
    """Draw a textured colour background.

    Sum of a base colour, a linear gradient, smooth low-frequency colour
    noise, faint strokes and slight pixel noise.

    Args:
        rng (np.random.Generator): Per-image random generator.
        image_size (int): Side of the square image in pixels.
        dark (bool): Whether the background is dark (digits light) or light
            (digits dark).

    Returns:
        np.ndarray: Float32 image of shape (image_size, image_size, 3) in
        [0, 1].
    """
    size = image_size
    level = rng.uniform(0.08, 0.35) if dark else rng.uniform(0.62, 0.9)
    base = level + rng.uniform(-0.08, 0.08, size=3)

    coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * coords[None, :] + np.sin(angle) * coords[:, None]
    gradient = ramp[..., None] * rng.uniform(-0.2, 0.2, size=3)

    grid_size = int(rng.integers(3, 7))
    coarse = rng.normal(0.0, 0.06, size=(grid_size, grid_size, 3))
    smooth = np.stack([
        _resize_float(coarse[..., channel], size, size)
        for channel in range(3)
    ], axis=-1)

    strokes = render_strokes(rng, size)[..., None]
    stroke_sign = 1.0 if dark else -1.0
    stroke_strength = rng.uniform(0.06, 0.15)

    fine = rng.normal(0.0, 0.015, size=(size, size, 3))
    image = (base + gradient + smooth + fine +
             stroke_sign * stroke_strength * strokes)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def render_strokes(rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw 0..4 soft random lines and arcs as a [0, 1] mask.

    Args:
        rng (np.random.Generator): Per-image random generator.
        size (int): Side of the square mask.

    Returns:
        np.ndarray: Float32 mask of shape (size, size).
    """
    mask = Image.new('L', (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(0, 5))):
        points = rng.uniform(-0.1 * size, 1.1 * size, size=4)
        width = int(rng.integers(1, 3))
        if rng.random() < 0.5:
            draw.line([float(value) for value in points], fill=255,
                      width=width)
        else:
            x0, x1 = sorted(points[:2])
            y0, y1 = sorted(points[2:])
            start = float(rng.uniform(0, 360))
            end = start + float(rng.uniform(60, 270))
            draw.arc([float(x0), float(y0), float(x1) + 1, float(y1) + 1],
                     start, end, fill=255, width=width)
    mask = mask.filter(ImageFilter.GaussianBlur(radius=0.8))
    return np.asarray(mask, dtype=np.float32) / 255.0


def _resize_float(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a 2-D float array with bicubic interpolation.

    Args:
        array (np.ndarray): 2-D array.
        width (int): Output width.
        height (int): Output height.

    Returns:
        np.ndarray: Float32 array of shape (height, width).
    """
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.float32))
    resized = image.resize((width, height), resample=Image.BICUBIC)
    return np.asarray(resized, dtype=np.float32)


def render_glyph_alpha(glyph: np.ndarray, height: int,
                       width: int) -> np.ndarray:
    """Upscale an 8x8 glyph to a blend mask with a one-cell blank margin.

    The glyph is padded by one empty cell on every side before the bicubic
    upscale so strokes fade out smoothly instead of being cut at the edge.

    Args:
        glyph (np.ndarray): (8, 8) glyph in [0, 1].
        height (int): Height in pixels of the 8 glyph rows.
        width (int): Width in pixels of the 8 glyph columns.

    Returns:
        np.ndarray: Float32 blend mask in [0, 1] of shape
        (height * 10 / 8, width * 10 / 8), rounded.
    """
    padded = np.pad(glyph, 1)
    upscaled = _resize_float(padded, round(width * 10 / 8),
                             round(height * 10 / 8))
    # Stretch contrast: faint sklearn strokes become solid ink.
    return np.clip((upscaled - 0.1) / 0.5, 0.0, 1.0)


def ink_extent(alpha: np.ndarray) -> Optional[Box]:
    """Return the tight inclusive box of pixels above the ink threshold.

    Args:
        alpha (np.ndarray): 2-D blend mask.

    Returns:
        tuple[int, int, int, int] | None: ``(x0, y0, x1, y1)`` inclusive,
        or None when no pixel counts as ink.
    """
    ink = alpha > INK_THRESHOLD
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def box_overlap_ok(box: Box, placed: Sequence[Box], max_iou: float) -> bool:
    """Check that a box overlaps every placed box only a little.

    Args:
        box (tuple): Candidate ``(x0, y0, x1, y1)`` inclusive box.
        placed (Sequence[tuple]): Boxes already in the scene.
        max_iou (float): Largest IoU allowed with any placed box.

    Returns:
        bool: True when IoU <= ``max_iou`` and the intersection covers at
        most ``MAX_COVERED_FRACTION`` of the smaller box for every placed
        box.
    """
    area = _box_area(box)
    for other in placed:
        inter_w = min(box[2], other[2]) - max(box[0], other[0]) + 1
        inter_h = min(box[3], other[3]) - max(box[1], other[1]) + 1
        if inter_w <= 0 or inter_h <= 0:
            continue
        inter = inter_w * inter_h
        other_area = _box_area(other)
        if inter / (area + other_area - inter) > max_iou:
            return False
        if inter / min(area, other_area) > MAX_COVERED_FRACTION:
            return False
    return True


def _box_area(box: Box) -> int:
    """Return the pixel area of an inclusive box."""
    return (box[2] - box[0] + 1) * (box[3] - box[1] + 1)


def pick_digit_colour(rng: np.random.Generator, dark: bool) -> np.ndarray:
    """Pick a tint that contrasts with the background polarity.

    Args:
        rng (np.random.Generator): Per-image random generator.
        dark (bool): Whether the background is dark.

    Returns:
        np.ndarray: RGB colour of shape (3,) in [0, 1].
    """
    if dark:
        colour = rng.uniform(0.45, 1.0, size=3)
        return colour / colour.max() * rng.uniform(0.85, 1.0)
    return rng.uniform(0.0, 0.4, size=3)


def compose_scene(rng: np.random.Generator, glyphs: np.ndarray,
                  labels: np.ndarray, pool: np.ndarray, image_size: int,
                  num_digits_range: Tuple[int, int],
                  digit_size_range: Tuple[int, int],
                  max_iou: float) -> Tuple[np.ndarray, List[dict]]:
    """Compose one scene and return its pixels and object records.

    Args:
        rng (np.random.Generator): Per-image random generator.
        glyphs (np.ndarray): All glyphs, (N, 8, 8) in [0, 1].
        labels (np.ndarray): Digit label of every glyph.
        pool (np.ndarray): Glyph indices this split may use.
        image_size (int): Side of the square image in pixels.
        num_digits_range (tuple[int, int]): Inclusive range of digits.
        digit_size_range (tuple[int, int]): Inclusive glyph height range.
        max_iou (float): Largest IoU allowed between two digit boxes.

    Returns:
        tuple[np.ndarray, list[dict]]: The uint8 (H, W, 3) image and one
        dict per digit with ``box`` (inclusive x0, y0, x1, y1), ``digit``
        and ``source_index``. Fewer digits than drawn may be placed when
        the scene is crowded, but never fewer than ``num_digits_range[0]``.

    Raises:
        RuntimeError: If fewer than ``num_digits_range[0]`` digits fit.
    """
    dark = bool(rng.random() < 0.5)
    image = render_background(rng, image_size, dark)
    num_digits = int(rng.integers(num_digits_range[0],
                                  num_digits_range[1] + 1))
    objects: List[dict] = []
    boxes: List[Box] = []
    for _ in range(MAX_GLYPH_PICKS_PER_DIGIT * num_digits):
        if len(objects) == num_digits:
            break
        source_index = int(rng.choice(pool))
        placement = _place_glyph(rng, glyphs[source_index], image_size,
                                 digit_size_range, boxes, max_iou)
        if placement is None:
            continue
        alpha, left, top, box = placement
        blend_glyph(image, alpha, left, top, pick_digit_colour(rng, dark))
        boxes.append(box)
        objects.append(dict(box=box, digit=int(labels[source_index]),
                            source_index=source_index))
    if len(objects) < num_digits_range[0]:
        raise RuntimeError(
            f'could only place {len(objects)} digits in a {image_size} px '
            f'scene; lower min_digits or the digit size range')
    pixels = np.round(image * 255.0).astype(np.uint8)
    return pixels, objects


def _place_glyph(rng: np.random.Generator, glyph: np.ndarray, image_size: int,
                 digit_size_range: Tuple[int, int], boxes: Sequence[Box],
                 max_iou: float
                 ) -> Optional[Tuple[np.ndarray, int, int, Box]]:
    """Find a size and position for a glyph that respects the overlap limit.

    The glyph is re-rendered at a new random size on every try; after half
    the tries the upper size bound shrinks to the minimum to ease packing.

    Args:
        rng (np.random.Generator): Per-image random generator.
        glyph (np.ndarray): (8, 8) glyph in [0, 1].
        image_size (int): Side of the square image in pixels.
        digit_size_range (tuple[int, int]): Inclusive glyph height range.
        boxes (Sequence[tuple]): Ink boxes already placed.
        max_iou (float): Largest IoU allowed with any placed box.

    Returns:
        tuple | None: ``(alpha, left, top, box)`` where ``box`` is the ink
        box in image coordinates, or None when no try fitted.
    """
    min_size, max_size = digit_size_range
    for attempt in range(MAX_PLACEMENT_TRIES):
        if attempt == MAX_PLACEMENT_TRIES // 2:
            max_size = min_size
        height = int(rng.integers(min_size, max_size + 1))
        width = max(4, round(height * rng.uniform(0.75, 1.1)))
        alpha = render_glyph_alpha(glyph, height, width)
        extent = ink_extent(alpha)
        if extent is None:
            return None
        # Position the ink (not the padded patch) fully inside the image.
        x0, y0, x1, y1 = extent
        ink_w, ink_h = x1 - x0 + 1, y1 - y0 + 1
        if ink_w > image_size or ink_h > image_size:
            continue
        ink_left = int(rng.integers(0, image_size - ink_w + 1))
        ink_top = int(rng.integers(0, image_size - ink_h + 1))
        box = (ink_left, ink_top, ink_left + ink_w - 1, ink_top + ink_h - 1)
        if box_overlap_ok(box, boxes, max_iou):
            return alpha, ink_left - x0, ink_top - y0, box
    return None


def blend_glyph(image: np.ndarray, alpha: np.ndarray, left: int, top: int,
                 colour: np.ndarray) -> None:
    """Alpha-blend a tinted glyph into the image in place, clipped to it.

    Args:
        image (np.ndarray): Float (H, W, 3) image, modified in place.
        alpha (np.ndarray): 2-D blend mask of the glyph patch.
        left (int): Image column of the patch's first column (may be < 0).
        top (int): Image row of the patch's first row (may be < 0).
        colour (np.ndarray): RGB tint of shape (3,).
    """
    height, width = image.shape[:2]
    patch_h, patch_w = alpha.shape
    img_x0, img_y0 = max(left, 0), max(top, 0)
    img_x1 = min(left + patch_w, width)
    img_y1 = min(top + patch_h, height)
    crop = alpha[img_y0 - top:img_y1 - top, img_x0 - left:img_x1 - left]
    crop = crop[..., None]
    region = image[img_y0:img_y1, img_x0:img_x1]
    image[img_y0:img_y1, img_x0:img_x1] = region * (1 - crop) + colour * crop

"""A small image classification set the demo makes on the spot: ten classes of drawn
shapes and textures in random colours, sizes and places, written as JPEG files in
ImageNet's folder layout (`root/train/<class>/*.JPEG`, `root/val/<class>/*.JPEG`), so the
real pipeline (scale jitter, crop, flip, colour shift) reads them like ImageNet. Four more
shapes (`NEW_CLASSES`), which the demo's net never sees, make the set it is fine-tuned on.

Every class survives a horizontal flip (stripes are horizontal, vertical or one diagonal
family folded with its mirror), so flip augmentation keeps labels right.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import tensorflow as tf

CLASSES = ("checkerboard", "circle", "cross", "diagonal", "dots", "horizontal", "ring",
           "square", "triangle", "vertical")
NEW_CLASSES = ("crescent", "diamond", "ellipse", "grid")
SIZES = ((96, 128), (128, 96), (112, 112), (96, 144))  # (height, width), px
# The demo's net on this set: its crop side and training scale S (px).
CROP_SIZE, SCALE = 48, (54, 72)


def figure_mask(name: str, rng: np.random.Generator, y: np.ndarray, x: np.ndarray, *,
                cy: float, cx: float, radius: float, period: float) -> np.ndarray:
    """The `[height, width]` boolean mask of class `name`'s figure over the pixel grids `y`
    and `x`: a shape of size `radius` (px) centred at `(cy, cx)`, or a texture of `period`
    (px) over the whole grid."""
    if name == "circle":
        return (y - cy) ** 2 + (x - cx) ** 2 < radius**2
    if name == "ring":
        distance = np.sqrt((y - cy) ** 2 + (x - cx) ** 2)
        return np.abs(distance - radius) < 0.25 * radius
    if name == "square":
        return (np.abs(y - cy) < radius * 0.85) & (np.abs(x - cx) < radius * 0.85)
    if name == "triangle":
        return (y - cy < radius) & (np.abs(x - cx) < (y - cy + radius) * 0.6)
    if name == "cross":
        bar = 0.3 * radius
        return ((np.abs(y - cy) < bar) & (np.abs(x - cx) < radius)) | (
            (np.abs(x - cx) < bar) & (np.abs(y - cy) < radius))
    if name == "horizontal":
        return (y / period) % 2 < 1
    if name == "vertical":
        return (x / period) % 2 < 1
    if name == "diagonal":
        direction = rng.choice([-1, 1])  # "/" and "\" are one class: flips swap them
        return ((y + direction * x) / period) % 2 < 1
    if name == "checkerboard":
        return ((y // period) + (x // period)) % 2 < 1
    if name == "crescent":  # a disc less a disc shifted sideways (flips keep it one)
        shift = rng.choice([-1, 1]) * 0.45 * radius
        return ((y - cy) ** 2 + (x - cx) ** 2 < radius**2) & (
            (y - cy) ** 2 + (x - cx - shift) ** 2 > (0.85 * radius) ** 2)
    if name == "diamond":
        return np.abs(y - cy) + np.abs(x - cx) < 1.1 * radius
    if name == "ellipse":  # lying or standing
        ry, rx = (0.55 * radius, 1.3 * radius)[::rng.choice([-1, 1])]
        return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1
    if name == "grid":
        return ((y % period) < 0.25 * period) | ((x % period) < 0.25 * period)
    if name == "dots":
        return ((y % (2 * period)) - period) ** 2 + ((x % (2 * period)) - period) ** 2 < (
            0.45 * period) ** 2
    raise ValueError(f"unknown figure {name!r}")


TEXTURES = frozenset({"horizontal", "vertical", "diagonal", "checkerboard", "grid", "dots"})


def contrasting(rng: np.random.Generator, colour: np.ndarray) -> np.ndarray:
    """A random RGB colour far enough from `colour` to see against it."""
    other = rng.uniform(0, 255, 3)
    while np.abs(colour - other).sum() < 150:
        other = rng.uniform(0, 255, 3)
    return other


def distinct_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random background and foreground RGB colour, far enough apart to see."""
    background = rng.uniform(0, 255, 3)
    return background, contrasting(rng, background)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The box `(x_min, y_min, x_max, y_max)` (px, max exclusive) of a mask's pixels."""
    rows, cols = np.nonzero(mask)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def draw(name: str, rng: np.random.Generator, height: int, width: int
         ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One `[height, width, 3]` uint8 image of class `name`, and the box of its figure:
    `(x_min, y_min, x_max, y_max)` pixels, the extent of the drawn pixels (the whole image
    for the textures)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    background, foreground = distinct_colours(rng)
    side = min(height, width)
    cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
    radius = rng.uniform(0.22, 0.32) * side
    period = rng.uniform(0.08, 0.16) * side
    mask = figure_mask(name, rng, y, x, cy=cy, cx=cx, radius=radius, period=period)
    image = np.where(mask[..., None], foreground, background)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask_box(mask)


def box_xml(name: str, box: tuple[int, int, int, int], height: int, width: int) -> str:
    """A Pascal-VOC-style annotation (ImageNet's format) of one box of class `name`."""
    x_min, y_min, x_max, y_max = box
    return (f"<annotation><size><width>{width}</width><height>{height}</height></size>"
            f"<object><name>{name}</name><bndbox><xmin>{x_min}</xmin><ymin>{y_min}</ymin>"
            f"<xmax>{x_max}</xmax><ymax>{y_max}</ymax></bndbox></object></annotation>\n")


def write(root: str, *, train_per_class: int = 150, val_per_class: int = 40,
          seed: int = 0, classes: tuple[str, ...] = CLASSES, draw_image=draw,
          sizes: tuple[tuple[int, int], ...] = SIZES) -> None:
    """Writes the set of `classes` under `root` (train/ and val/, and each figure's box in
    boxes/train/ and boxes/val/, one XML file per image), unless it is there already.
    `draw_image(name, rng, height, width)` draws each image (`draw`'s signature), of a
    `(height, width)` drawn from `sizes`."""
    marker = os.path.join(root, "COMPLETE")
    summary = (f"{draw_image.__module__}.{draw_image.__name__}, {', '.join(classes)}: "
               f"{train_per_class} + {val_per_class} per class, with boxes\n")
    if os.path.exists(marker) and open(marker, encoding="utf8").read() == summary:
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for name in classes:
            folder = os.path.join(root, split, name)
            boxes = os.path.join(root, "boxes", split)
            os.makedirs(folder, exist_ok=True)
            os.makedirs(boxes, exist_ok=True)
            for index in range(count):
                height, width = (int(side) for side in rng.choice(sizes))
                image, box = draw_image(name, rng, height, width)
                stem = f"{name}_{index:04d}"
                tf.io.write_file(os.path.join(folder, f"{stem}.JPEG"),
                                 tf.io.encode_jpeg(image, quality=90))
                with open(os.path.join(boxes, f"{stem}.xml"), "w", encoding="utf8") as file:
                    file.write(box_xml(name, box, height, width))
    with open(marker, "w", encoding="utf8") as file:
        file.write(summary)

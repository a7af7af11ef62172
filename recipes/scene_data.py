"""A generated image set on which the paper's methods have something to act: the demo's
figures (`demo_data`), one per image, at a random place and size on a cluttered
background, in images more than twice the side of the training crop that `make paper`
uses (64 px). Written like the demo's set: JPEG files in ImageNet's folder layout, and
each figure's box in ImageNet's XML format (`demo_data.write`).

The design, fixed before any net was trained on it:
- images of 144x192, 192x144, 160x160 or 144x176 px (height x width);
- the figure's size (`radius`, half the side of a shape's bounding square) uniform in
  20-35% of the shorter side, a 1.75x range: at S = 73 a figure is 29 to 51 px across,
  at S = 146 twice that, against 64 px crops. (At 10-30%, config A learnt too slowly for
  the study's budget: 21% top-1 accuracy after 30 epochs. The range was set before any
  finding was measured.)
- its centre uniform over the places that keep it whole in the image, so the figure is
  rarely where a centre crop looks;
- the textures (stripes, checkerboard, dots, grid) fill a rectangle of half-sides
  0.7-1.0 x `radius` in two colours, with a period of 0.3-0.5 x `radius`: every class is
  an object with a box (the textures' box is the rectangle's);
- clutter: a background shaded between two colours, and six line segments of random
  colour, 1-3 px wide and 15-50% of the shorter side long, under the figure; pixel noise
  of standard deviation 12, as the demo's.
"""

from __future__ import annotations

import numpy as np

import demo_data

CLASSES, NEW_CLASSES = demo_data.CLASSES, demo_data.NEW_CLASSES
SIZES = ((144, 192), (192, 144), (160, 160), (144, 176))  # (height, width), px
RADIUS = (0.20, 0.35)  # of the shorter side
LINES = 6


def _segment_mask(y, x, start, end, width: float) -> np.ndarray:
    """Pixels within `width / 2` of the segment from `start` to `end` ((y, x), px)."""
    (y0, x0), (y1, x1) = start, end
    dy, dx = y1 - y0, x1 - x0
    t = np.clip(((y - y0) * dy + (x - x0) * dx) / max(dy * dy + dx * dx, 1e-6), 0, 1)
    return (y - y0 - t * dy) ** 2 + (x - x0 - t * dx) ** 2 < (width / 2) ** 2


def background(rng: np.random.Generator, y, x, colour: np.ndarray) -> np.ndarray:
    """`[height, width, 3]` float: shaded from `colour` to a nearby colour along a random
    direction, with `LINES` random line segments over it."""
    height, width = y.shape
    side = min(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * y + np.sin(angle) * x)
    ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-6)
    other = np.clip(colour + rng.uniform(-30, 30, 3), 0, 255)
    image = colour + ramp[..., None] * (other - colour)
    for _ in range(LINES):
        start = rng.uniform((0, 0), (height, width))
        angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(0.15, 0.5) * side
        end = start + length * np.array([np.sin(angle), np.cos(angle)])
        line = _segment_mask(y, x, start, end, rng.uniform(1, 3))
        image = np.where(line[..., None], rng.uniform(0, 255, 3), image)
    return image


def draw(name: str, rng: np.random.Generator, height: int, width: int
         ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One `[height, width, 3]` uint8 scene holding one figure of class `name`, and the
    figure's box `(x_min, y_min, x_max, y_max)`, px."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    colour, foreground = demo_data.distinct_colours(rng)
    image = background(rng, y, x, colour)
    side = min(height, width)
    radius = rng.uniform(*RADIUS) * side
    # Shapes reach 1.1 x radius from their centre at most (the diamond), the ellipse 1.3 x
    # along one axis.
    reach = 1.3 * radius
    cy, cx = rng.uniform(reach, height - reach), rng.uniform(reach, width - reach)
    period = rng.uniform(0.3, 0.5) * radius
    mask = demo_data.figure_mask(name, rng, y, x, cy=cy, cx=cx, radius=radius, period=period)
    extent = mask
    if name in demo_data.TEXTURES:
        half_height, half_width = rng.uniform(0.7, 1.0, 2) * radius
        extent = (np.abs(y - cy) < half_height) & (np.abs(x - cx) < half_width)
        image = np.where(extent[..., None], demo_data.contrasting(rng, foreground), image)
    image = np.where((mask & extent)[..., None], foreground, image)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), demo_data.mask_box(extent)


def write(root: str, *, train_per_class: int, val_per_class: int, seed: int = 0,
          classes: tuple[str, ...] = CLASSES) -> None:
    """Writes the scenes of `classes` under `root`, as `demo_data.write` writes its set."""
    demo_data.write(root, train_per_class=train_per_class, val_per_class=val_per_class,
                    seed=seed, classes=classes, draw_image=draw, sizes=SIZES)

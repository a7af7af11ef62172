"""Bounding-box annotations for localisation (Appendix A), as ImageNet distributes them.

- Pascal-VOC-style XML, one file per image (`ILSVRC2012_bbox_train_v2.tar.gz` holds
  `<synset>/<image>.xml`, `ILSVRC2012_bbox_val_v3.tgz` holds `val/<image>.xml`):
  `<object><name>n01440764</name><bndbox><xmin>…` per box.
- The localisation challenge's CSV files (`LOC_train_solution.csv`,
  `LOC_val_solution.csv`): `ImageId,PredictionString`, the string holding
  `synset x_min y_min x_max y_max` per box.

Boxes are corners in the image's pixels (`keras_vgg.boxes`).

Boxes are matched to images by file name; images without a box of their class are counted
and left out (`keras_vgg.sources`).
"""

from __future__ import annotations

import csv
import functools
import os
import xml.etree.ElementTree as ElementTree

Box = tuple[str, tuple[float, float, float, float]]  # (class id, corners)


def read_xml(path: str) -> list[Box]:
    """The boxes of one VOC-style XML file."""
    try:
        root = ElementTree.parse(path).getroot()
        boxes = []
        for item in root.iter("object"):
            corners = item.find("bndbox")
            boxes.append((item.findtext("name").strip(), tuple(
                float(corners.findtext(key)) for key in ("xmin", "ymin", "xmax", "ymax"))))
    except (ElementTree.ParseError, AttributeError, TypeError, ValueError) as error:
        raise ValueError(f"annotation {path!r} is not a VOC-style box file: {error}") from error
    return boxes


def read_solution_csv(path: str) -> dict[str, list[Box]]:
    """`{image id: boxes}` from a `LOC_*_solution.csv` file."""
    with open(path, newline="", encoding="utf8") as file:
        rows = list(csv.DictReader(file))
    if rows and not {"ImageId", "PredictionString"} <= set(rows[0]):
        raise ValueError(f"{path!r}: expected the columns ImageId,PredictionString")
    result = {}
    for row in rows:
        fields = row["PredictionString"].split()
        if len(fields) % 5:
            raise ValueError(f"{path!r}, image {row['ImageId']}: expected 'synset x_min y_min "
                             f"x_max y_max' per box, got {row['PredictionString']!r}")
        result[row["ImageId"]] = [
            (fields[i], tuple(float(value) for value in fields[i + 1 : i + 5]))
            for i in range(0, len(fields), 5)]
    return result


def read(location: str) -> dict[str, list[Box]]:
    """`{image id (file name without extension): boxes}` from a `LOC_*_solution.csv` file or
    a folder of XML files (searched recursively: ImageNet's per-synset folders). Read once
    per process for each location and modification time: a training run opens its sources
    several times, and ImageNet's training boxes are 544,546 files."""
    if not os.path.exists(location):
        raise ValueError(f"box annotations {location!r}: no such file or folder")
    return _read(os.path.abspath(location), os.stat(location).st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read(location: str, modified_ns: int) -> dict[str, list[Box]]:
    del modified_ns  # part of the cache key
    if os.path.isfile(location):
        return read_solution_csv(location)
    result = {}
    for folder, _, names in sorted(os.walk(location)):
        for name in sorted(names):
            if name.endswith(".xml"):
                result[os.path.splitext(name)[0]] = read_xml(os.path.join(folder, name))
    if not result:
        raise ValueError(f"box annotations {location!r}: the folder holds no .xml files")
    return result

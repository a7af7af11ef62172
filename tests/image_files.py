"""Image files for the data tests: real photographs (scikit-image ships them) and the
troublemakers ImageNet and real folders contain."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile

import numpy as np
import skimage.data
from PIL import Image

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")


def photo(name: str) -> np.ndarray:
    return getattr(skimage.data, name)()[..., :3]


def encode(image: np.ndarray, fmt: str = "JPEG", mode: str | None = None, **kwargs) -> bytes:
    picture = Image.fromarray(image)
    if mode:
        picture = picture.convert(mode)
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def valid_oddities() -> dict[str, bytes]:
    """Files that must decode: CMYK JPEG, PNG named .JPEG, grayscale, RGBA PNG, tiny."""
    astronaut = photo("astronaut")
    return {
        "cmyk.JPEG": encode(astronaut, mode="CMYK", quality=95),
        "png_named.JPEG": encode(astronaut, "PNG"),
        "grayscale.JPEG": encode(skimage.data.camera()),
        "rgba.png": encode(astronaut, "PNG", mode="RGBA"),
        "tiny.JPEG": encode(astronaut[100:120, 200:230]),
    }


def broken_files() -> dict[str, bytes]:
    """Files that cannot be decoded: truncated JPEG and PNG, random bytes, empty, text."""
    jpeg = encode(photo("coffee"))
    png = encode(photo("chelsea"), "PNG")
    return {
        "truncated.JPEG": jpeg[: len(jpeg) // 2],
        "truncated_png.png": png[: len(png) // 3],
        "random.JPEG": np.random.default_rng(0).bytes(5000),
        "empty.JPEG": b"",
        "notes.txt": b"not an image\n",
    }


def write(folder: str, files: dict[str, bytes]) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, payload in files.items():
        path = os.path.join(folder, name)
        with open(path, "wb") as file:
            file.write(payload)
        paths.append(path)
    return paths


def imagenet_folder(root: str, synsets: list[str], per_class: int = 3) -> list[str]:
    """root/<synset>/<synset>_<i>.JPEG from the photographs, cycling through them."""
    paths = []
    for k, synset in enumerate(synsets):
        files = {
            f"{synset}_{i}.JPEG": encode(photo(PHOTOS[(k + i) % len(PHOTOS)]), quality=90)
            for i in range(per_class)
        }
        paths += write(os.path.join(root, synset), files)
    return paths


def _add(archive: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    archive.addfile(info, io.BytesIO(payload))


def imagenet_manual_dir(manual_dir: str, synsets: list[str], per_class: int, val: int) -> None:
    """ILSVRC2012_img_train.tar (a tar of per-synset tars) and ILSVRC2012_img_val.tar, as
    ImageNet distributes them, for TFDS's imagenet2012 builder."""
    os.makedirs(manual_dir, exist_ok=True)
    with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_train.tar"), "w") as train:
        for k, synset in enumerate(synsets):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as per_synset:
                for i in range(per_class):
                    image = photo(PHOTOS[(k + i) % len(PHOTOS)])
                    _add(per_synset, f"{synset}_{i}.JPEG", encode(image))
            _add(train, f"{synset}.tar", inner.getvalue())
    with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_val.tar"), "w") as validation:
        for i in range(1, val + 1):
            image = photo(PHOTOS[i % len(PHOTOS)])
            _add(validation, f"ILSVRC2012_val_{i:08d}.JPEG", encode(image))


def _small_photo(k: int) -> bytes:
    return encode(photo(PHOTOS[k % len(PHOTOS)])[::8, ::8])


def _voc_annotation(objects: list[tuple[str, bool]]) -> bytes:
    """A VOC annotation XML: a 64x48 image holding `objects` (class, difficult)."""
    boxes = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>{int(difficult)}</difficult><bndbox><xmin>4</xmin><ymin>5</ymin>"
        "<xmax>40</xmax><ymax>30</ymax></bndbox></object>"
        for name, difficult in objects)
    return (f"<annotation><size><width>64</width><height>48</height><depth>3</depth></size>"
            f"{boxes}</annotation>").encode()


VOC_ARCHIVES = {"2007": {"VOCtrainval_06-Nov-2007.tar": ("train", "val"),
                         "VOCtest_06-Nov-2007.tar": ("test",)},
                "2012": {"VOCtrainval_11-May-2012.tar": ("train", "val"),
                         "VOC2012test.tar": ("test",)}}


def voc_manual_dir(manual_dir: str, year: str,
                   splits: dict[str, dict[str, list[tuple[str, bool]]]]) -> None:
    """PASCAL VOC's trainval and test archives as PASCAL distributes them
    (VOCdevkit/VOC<year>/{JPEGImages, Annotations, ImageSets/Main}), for TFDS's voc/<year>
    builder. `splits`: {"train"/"val"/"test": {image id: [(class, difficult), ...]}}."""
    os.makedirs(manual_dir, exist_ok=True)
    for k, (archive_name, split_names) in enumerate(VOC_ARCHIVES[year].items()):
        with tarfile.open(os.path.join(manual_dir, archive_name), "w") as archive:
            root = f"VOCdevkit/VOC{year}"
            for split in split_names:
                images = splits[split]
                _add(archive, f"{root}/ImageSets/Main/{split}.txt",
                     "".join(f"{image_id}\n" for image_id in images).encode())
                for i, (image_id, objects) in enumerate(images.items()):
                    _add(archive, f"{root}/JPEGImages/{image_id}.jpg", _small_photo(k + i))
                    _add(archive, f"{root}/Annotations/{image_id}.xml", _voc_annotation(objects))


def caltech_manual_dir(manual_dir: str, classes: list[str], per_class: int) -> None:
    """caltech-101.zip holding caltech-101/101_ObjectCategories.tar.gz, as Caltech
    distributes it, for TFDS's caltech101 builder: `per_class` images in each class folder
    (the builder puts 30 of each class in its train split)."""
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as categories:
        for k, name in enumerate(classes):
            for i in range(per_class):
                _add(categories, f"101_ObjectCategories/{name}/image_{i + 1:04d}.jpg",
                     _small_photo(k + i))
    os.makedirs(manual_dir, exist_ok=True)
    with zipfile.ZipFile(os.path.join(manual_dir, "caltech-101.zip"), "w") as archive:
        archive.writestr("caltech-101/101_ObjectCategories.tar.gz", inner.getvalue())

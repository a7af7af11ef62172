"""torchvision's training loaders, the pipeline benchmark's peers: images/s through the
same augmentation as `keras_vgg.data.train_dataset` (the shorter side rescaled to S drawn
from [S_min, S_max], a random crop, a random flip, AlexNet's PCA colour shift, then the
caffe preprocessing: RGB -> BGR minus the BGR mean), batched and shuffled.

  PIL          ImageFolder (PIL decoding) + v2 transforms, DataLoader
  decode_jpeg  the file's bytes through torchvision.io.decode_jpeg + the same v2
               transforms on uint8 tensors, DataLoader
  decode_jpeg, centre crop
               the test-time view: decode_jpeg, the shorter side rescaled to Q, the centre
               crop, the caffe preprocessing, in file order

Run by `benchmarks.pipeline` with the interpreter of an environment that has torchvision
(`make bench` makes one); it imports neither TensorFlow nor keras_vgg, and prints one JSON
object, `{row: images per second}`:

    python benchmarks/torch_loaders.py --folder=DIR --settings='{...}'
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torchvision
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2


class ColourShift:
    """AlexNet's PCA lighting noise on a float `[3, h, w]` RGB image in [0, 255]."""

    def __init__(self, eigenvalues, eigenvectors, stddev: float):
        self.eigenvalues = torch.tensor(eigenvalues)
        self.eigenvectors = torch.tensor(eigenvectors)
        self.stddev = stddev

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        alpha = torch.randn(3) * self.stddev
        shift = 255.0 * self.eigenvectors @ (alpha * self.eigenvalues)
        return image + shift[:, None, None]


class Caffe:
    """RGB -> BGR minus the BGR mean, as keras_vgg's default preprocessing."""

    def __init__(self, bgr_mean):
        self.bgr_mean = torch.tensor(bgr_mean)[:, None, None]

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return image.flip(0) - self.bgr_mean


def centre_crop(settings: dict) -> v2.Compose:
    """The test-time view `keras_vgg.data.eval_dataset(view="center")` gives: the shorter side
    rescaled to Q, the centre crop, the caffe preprocessing."""
    return v2.Compose([
        v2.ToImage(),
        v2.Resize(settings["test_scale"], antialias=False),
        v2.CenterCrop(settings["crop_size"]),
        v2.ToDtype(torch.float32, scale=False),
        Caffe(settings["bgr_mean"]),
    ])


def augmentation(settings: dict) -> v2.Compose:
    low, high = settings["scale"]
    crop = settings["crop_size"]
    return v2.Compose([
        v2.ToImage(),
        v2.RandomShortestSize(min_size=list(range(low, high + 1)), antialias=True),
        v2.RandomCrop(crop),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=False),
        ColourShift(settings["eigenvalues"], settings["eigenvectors"],
                    settings["alpha_stddev"]),
        Caffe(settings["bgr_mean"]),
    ])


class DecodedFiles(Dataset):
    """The folder's files as ImageFolder lists them, decoded by `decode_jpeg`."""

    def __init__(self, folder: str, transform):
        self.samples = torchvision.datasets.ImageFolder(folder).samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        image = torchvision.io.decode_jpeg(torchvision.io.read_file(path),
                                           mode=torchvision.io.ImageReadMode.RGB)
        return self.transform(image), label


def loaders(folder: str, settings: dict, workers: int) -> dict[str, DataLoader]:
    """The training loaders (shuffled, augmented) and decode_jpeg's centre-crop test loader."""
    transform = augmentation(settings)
    datasets = {"PIL": (torchvision.datasets.ImageFolder(folder, transform=transform), True),
                "decode_jpeg": (DecodedFiles(folder, transform), True),
                "decode_jpeg, centre crop": (DecodedFiles(folder, centre_crop(settings)), False)}
    return {name: DataLoader(dataset, batch_size=settings["batch_size"], shuffle=shuffle,
                             num_workers=workers, persistent_workers=workers > 0)
            for name, (dataset, shuffle) in datasets.items()}


def images_per_second(loader: DataLoader) -> float:
    count, start = 0, time.perf_counter()
    for images, _ in loader:
        count += len(images)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", required=True)
    parser.add_argument("--settings", required=True, help="JSON: the augmentation's numbers")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--core", type=int, default=None, help="pin to this CPU core")
    arguments = parser.parse_args()
    if arguments.core is not None:
        os.sched_setaffinity(0, [arguments.core])
        torch.set_num_threads(1)
    settings = json.loads(arguments.settings)
    rates = {}
    for name, loader in loaders(arguments.folder, settings, arguments.workers).items():
        images_per_second(loader)  # warm-up: file cache, workers, allocator
        rates[name] = images_per_second(loader)
    print(json.dumps(rates))


if __name__ == "__main__":
    main()

"""A run's training curves as a PNG: loss and top-1 accuracy per epoch, training and
validation, with chance and each learning-rate drop marked (`history.csv`, which the
run's CSV log writes). Needs matplotlib (`pip install 'keras-vgg[plot]'`)."""

from __future__ import annotations

import csv
import os

from keras_vgg import runs


def rate_drops(rows: list[dict]) -> list[float]:
    """Where the learning rate dropped, as epochs (1-based) halfway between the last epoch
    at the old rate and the first at the new one: `history.csv` logs the rate each epoch
    trained at."""
    rates = [float(row["learning_rate"]) for row in rows]
    return [int(row["epoch"]) + 1.5 for row, before, after in zip(rows, rates, rates[1:],
                                                                 strict=False)
            if after < before]


def plot(run: runs.Run, png: str) -> str:
    """Draws `run`'s curves into `png`; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(os.path.join(run.directory, "history.csv"), encoding="utf8") as file:
        rows = list(csv.DictReader(file))
    epochs = [int(row["epoch"]) + 1 for row in rows]
    drops = rate_drops(rows)
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("loss", "training"), ("val_loss", "validation")):
        loss_axes.plot(epochs, [float(row[key]) for row in rows], marker="o", label=label)
    for key, label in (("accuracy", "training"), ("val_accuracy", "validation")):
        accuracy_axes.plot(epochs, [float(row[key]) for row in rows], marker="o", label=label)
    accuracy_axes.axhline(1 / run.num_classes, color="grey", linestyle=":", label="chance")
    for axes in (loss_axes, accuracy_axes):
        for index, epoch in enumerate(drops):
            axes.axvline(epoch, color="tab:red", linestyle="--", linewidth=1,
                         label="learning rate / 10" if index == 0 else None)
    loss_axes.set(title="Loss", xlabel="epoch")
    accuracy_axes.set(title="Top-1 accuracy", xlabel="epoch", ylim=(0, 1))
    loss_axes.legend()
    accuracy_axes.legend()
    config = run.config
    figure.suptitle(f"{os.path.basename(os.path.normpath(run.directory))}: config "
                    f"{config.config}, width {config.width_multiplier:g}, {config.crop_size} px "
                    f"crops, {run.num_classes} classes")
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)
    return png

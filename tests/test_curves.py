"""A run's training curves (`keras_vgg.curves`), with its learning-rate drops marked."""

import csv

from keras_vgg import curves, runs


def test_the_curves_mark_each_learning_rate_drop(tmp_path):
    run = runs.Run.of(runs.RunConfig(model_dir=str(tmp_path), config="A", data="folder:/t",
                                     val_data="folder:/v"), ["a", "b"])
    run.save()
    rates = [0.01, 0.01, 0.001, 0.001, 0.001, 0.0001]
    with open(tmp_path / "history.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["epoch", "accuracy", "learning_rate", "loss", "val_accuracy",
                         "val_loss"])
        for epoch, rate in enumerate(rates):
            writer.writerow([epoch, 0.5 + epoch / 20, rate, 1 - epoch / 10, 0.5, 0.9])
    with open(tmp_path / "history.csv") as file:
        # 1-based: epochs 1-2 at 0.01, 3-5 at 0.001, 6 at 0.0001
        assert curves.rate_drops(list(csv.DictReader(file))) == [2.5, 5.5]
    png = curves.plot(runs.load(tmp_path), str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").stat().st_size > 10_000 and png.endswith("curves.png")

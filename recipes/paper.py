"""`make paper`: the paper's findings, reproduced in miniature on a generated image set.

Trains the small nets the findings need on `scene_data`'s scenes (one figure per image, at a
random place and size, in clutter), measures each finding as the paper did, and writes
`<report_dir>/report.md` with PNG plots: for each finding the paper's figure, ours, and
whether the direction holds.

The miniature: every length of the paper over 3.5 (`paper_px`): 64 px crops for 224, S = 73
and 110 for 256 and 384, S in [73, 146] for [256, 512], the multi-scale offset 9 for 32;
every net at 1/8 of the paper's widths for the same number of epochs, A and A-LRN from
scratch (Glorot) and the others from the trained A (Sect. 3.1); the paper's recipe otherwise
(SGD, momentum, weight decay, dropout, augmentation, the plateau schedule), at 4x its
learning rates scaled to the batch (`RATE_FACTOR`).

    python recipes/paper.py [--workdir=paper/work] [--report_dir=paper] [--quick]
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import platform
import shutil
import sys
import time

import numpy as np
from absl import app, flags

from keras_vgg import (
    callbacks,
    configs,
    evaluation,
    linear,
    localisation_eval,
    progress,
    runs,
    sources,
    training,
    transfer,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paper_report as report  # noqa: E402
import scene_data  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", os.path.join("paper", "work"),
                    "Where the image sets and the runs go.")
flags.DEFINE_string("report_dir", "paper", "Where report.md and its plots go.")
flags.DEFINE_integer("epochs", 16, "Training epochs of every classification net.")
flags.DEFINE_integer("localisation_epochs", 16, "Fine-tuning epochs of the localisation nets.")
flags.DEFINE_integer("train_per_class", 200, "Training images per class.")
flags.DEFINE_integer("val_per_class", 50, "Held-out images per class.")
flags.DEFINE_bool("report_only", False, "Write the report again from the last run's "
                  "measurements (<workdir>/measurements.pickle), training nothing.")
flags.DEFINE_bool("quick", False, "A few images and one epoch per net: checks the pipeline, "
                  "measures nothing.")

CROP = 64  # px; the paper's 224 / 3.5


def paper_px(pixels: int) -> int:
    """A length of the paper's (px, at its 224 crop) at this miniature's crop."""
    return round(pixels * CROP / configs.DEFAULT_INPUT_SIZE)


S_256, S_384, S_512 = paper_px(256), paper_px(384), paper_px(512)
JITTER = (S_256, S_512)
MULTI_SCALE_OFFSET = paper_px(runs.MULTI_SCALE_OFFSET)
WIDTH = 1 / 8
# Measured on config A before any other net was trained: at the paper's rate scaled to the
# batch (0.01 x 32 / 256) it reached 29% top-1 accuracy in 20 epochs; at 4x, 71%.
RATE_FACTOR = 4
TRANSFER_CLASSES = scene_data.NEW_CLASSES
MEASUREMENTS = "measurements.pickle"


@dataclasses.dataclass(frozen=True)
class Classifier:
    """A classification net of the study: its config, training scale S (px), and whether
    it starts from the trained A (`--warm_start`, Sect. 3.1) or from scratch."""

    config: str
    scale: tuple[int, int]
    from_a: bool = True

    @property
    def name(self) -> str:
        """As the paper's tables name nets, config/S: "D/73", "D/[73;146]"."""
        low, high = self.scale
        return f"{self.config}/{low}" if low == high else f"{self.config}/[{low};{high}]"

    @property
    def directory(self) -> str:
        low, high = self.scale
        return f"{self.config}_s{low}" if low == high else f"{self.config}_s{low}-{high}"

    @property
    def test_scale(self) -> int:
        """Single-scale Q: S, or S_384 for the jittered S (Sect. 3.2)."""
        low, high = self.scale
        return low if low == high else S_384

    @property
    def test_scales(self) -> tuple[int, ...]:
        """Multi-scale Q: {S - 9, S, S + 9} (the paper's +-32), or {S_min, S_384, S_max}."""
        low, high = self.scale
        if low == high:
            return (max(low - MULTI_SCALE_OFFSET, CROP), low, low + MULTI_SCALE_OFFSET)
        return (low, S_384, high)


FIRST = Classifier("A", JITTER, from_a=False)
DEPTH = (FIRST, Classifier("A-LRN", JITTER, from_a=False),
         *(Classifier(config, JITTER) for config in ("B", "B-5x5", "C", "D", "E")))
FIXED = (Classifier("D", (S_256, S_256)), Classifier("D", (S_384, S_384)))
CLASSIFIERS = DEPTH + FIXED
MAIN = Classifier("D", JITTER)  # the localisation and transfer nets' start
SECOND = Classifier("E", JITTER)
# Appendix A's variants: (name, box regression, fine-tune every layer)
LOCALISERS = (("PCR, all layers", "pcr", True), ("SCR, all layers", "scr", True),
              ("PCR, FC layers", "pcr", False))


class Study:
    """The runs and measurements, step by step, with a progress bar and a line per step."""

    def __init__(self, workdir: str, report_dir: str, *, quick: bool, steps: int,
                 train_images: int):
        self.workdir, self.report_dir, self.quick = workdir, report_dir, quick
        # Quick mode's few images make one step an epoch: a batch of one image's loss
        # would be too noisy for the divergence guard.
        self.batch = train_images if quick else runs.default_batch_size(train_images)
        self.notes: list[str] = []  # what did not go as planned
        self.models, self.dense = {}, {}
        self.images = os.path.join(workdir, "scenes")
        self.new_images = os.path.join(workdir, "new_scenes")
        self.train_source = f"folder:{self.images}/train"
        self.val_source = f"folder:{self.images}/val"
        self.start = time.perf_counter()
        self.bar = progress.bar(steps, unit="step")
        self.done = 0

    def step(self, line: str) -> None:
        self.done += 1
        minutes, seconds = divmod(int(time.perf_counter() - self.start), 60)
        print(f"[{self.done}] {minutes:2d}m{seconds:02d}s  {line}", flush=True)
        if self.bar:
            self.bar.update(self.done)

    def faster(self, config: runs.RunConfig) -> runs.RunConfig:
        """`config` at `RATE_FACTOR` x the rate its task's defaults give it (the paper's,
        scaled to the batch), except in quick mode, whose few images make that too noisy."""
        factor = 1 if self.quick else RATE_FACTOR
        return dataclasses.replace(config, learning_rate=factor * config.initial_learning_rate())

    def run_dir(self, name: str) -> str:
        return os.path.join(self.workdir, "runs", name)

    def train(self, config: runs.RunConfig) -> training.TrainingResult:
        """Trains `config` afresh; a run that diverges at `RATE_FACTOR` x the paper's rate is
        trained again at the paper's rate, and one that ends at chance is kept: both are
        noted in the report."""
        shutil.rmtree(config.model_dir, ignore_errors=True)
        try:
            result = training.train(config, verbose=0)
        except callbacks.LossDiverged as error:
            rate = config.learning_rate / RATE_FACTOR
            note = (f"{os.path.basename(config.model_dir)} diverged at rate "
                    f"{config.learning_rate:g} and was trained again at the paper's, {rate:g}")
            print(f"{note} ({error})", flush=True)
            self.notes.append(note)
            shutil.rmtree(config.model_dir, ignore_errors=True)
            result = training.train(dataclasses.replace(config, learning_rate=rate), verbose=0)
        if result.learnt is False and not self.quick:
            note = (f"{os.path.basename(config.model_dir)} ended at chance: "
                    f"{100 * result.val_accuracy:.1f}% top-1 accuracy")
            print(note, flush=True)
            self.notes.append(note)
        return result

    def classifier_config(self, net: Classifier, epochs: int) -> runs.RunConfig:
        return self.faster(runs.RunConfig(
            model_dir=self.run_dir(net.directory), config=net.config, data=self.train_source,
            val_data=self.val_source, epochs=epochs, batch_size=self.batch, width_multiplier=WIDTH,
            scale=net.scale, crop_size=CROP, test_scale=net.test_scale, seed=0,
            warm_start=self.run_dir(FIRST.directory) if net.from_a else None))

    def posteriors(self, net: Classifier, protocol: str, test_scales) -> tuple:
        """`([n, classes] posteriors, [n] labels)` of `net` on the held-out images; dense
        ones per Q are computed once, and several Q average them (as `evaluation` does)."""
        if protocol == "dense":
            for q in test_scales:
                if (net, q) not in self.dense:
                    self.dense[(net, q)] = self._posteriors(net, "dense", (q,))
            labels = self.dense[(net, test_scales[0])][1]
            return np.mean([self.dense[(net, q)][0] for q in test_scales], axis=0), labels
        return self._posteriors(net, protocol, test_scales)

    def model(self, net: Classifier):
        """The trained net's model and its preprocessing, built once."""
        if net not in self.models:
            run = runs.load(self.run_dir(net.directory))
            self.models[net] = run.build_model(), run.config.preprocessing
        return self.models[net]

    def _posteriors(self, net: Classifier, protocol: str, test_scales) -> tuple:
        model, preprocessing = self.model(net)
        return evaluation.posteriors(model, self.val_source, protocol=protocol,
                                     test_scales=tuple(test_scales),
                                     preprocessing=preprocessing)


def main(argv):
    del argv
    quick = FLAGS.quick
    epochs, loc_epochs = (1, 1) if quick else (FLAGS.epochs, FLAGS.localisation_epochs)
    if FLAGS.report_only:
        with open(os.path.join(FLAGS.workdir, MEASUREMENTS), "rb") as file:
            measured = pickle.load(file)
        print(f"Report written: {write_report(measured, FLAGS.report_dir)}")
        return
    per_class, val_per_class = (2, 1) if quick else (FLAGS.train_per_class, FLAGS.val_per_class)
    steps = 1 + len(CLASSIFIERS) + 5 + len(LOCALISERS) + 2
    study = Study(FLAGS.workdir, FLAGS.report_dir, quick=quick, steps=steps,
                  train_images=per_class * len(scene_data.CLASSES))
    os.makedirs(study.report_dir, exist_ok=True)

    scene_data.write(study.images, train_per_class=per_class, val_per_class=val_per_class)
    scene_data.write(study.new_images, train_per_class=max(per_class // 5, 2),
                     val_per_class=max(val_per_class * 2 // 5, 1), classes=TRANSFER_CLASSES)
    study.step(f"scenes written: {per_class} + {val_per_class} per class of "
               f"{len(scene_data.CLASSES)} classes in {study.images}")

    trained = {}
    for net in CLASSIFIERS:
        config = study.classifier_config(net, epochs)
        result = study.train(config)
        trained[net] = result
        study.step(f"trained {net.name}: {result.epochs} epoch(s), centre crop top-1 accuracy "
                   f"{100 * result.val_accuracy:.1f}% (Q={net.test_scale})")

    main_run = trained[MAIN].run
    measured = report.Measurements(quick=quick, epochs=epochs, localisation_epochs=loc_epochs,
                                   batch=main_run.config.batch_size,
                                   learning_rate=main_run.initial_learning_rate(),
                                   val_images=trained[MAIN].val_images,
                                   new_classes=len(TRANSFER_CLASSES))
    # Table 3: single-scale dense evaluation at each net's Q.
    for net in CLASSIFIERS:
        p, labels = study.posteriors(net, "dense", (net.test_scale,))
        measured.single_scale[net.name] = evaluation.top_k_error(p, labels, 1)
    study.step("Table 3: " + ", ".join(f"{name} {report.percent(e)}%" for name, e in
                                       measured.single_scale.items()))

    # Scale jitter and multi-scale testing (Tables 3 and 4): D's three nets at the jittered
    # net's Q set, and at their own.
    for net in (*FIXED, MAIN):
        for q in sorted({*MAIN.test_scales, *net.test_scales}):
            p, labels = study.posteriors(net, "dense", (q,))
            measured.by_test_scale[(net.name, q)] = evaluation.top_k_error(p, labels, 1)
        p, labels = study.posteriors(net, "dense", net.test_scales)
        measured.multi_scale[net.name] = (net.test_scales, evaluation.top_k_error(p, labels, 1))
    study.step("Table 4: " + ", ".join(f"{name} Q={','.join(map(str, q))} {report.percent(e)}%"
                                       for name, (q, e) in measured.multi_scale.items()))

    # Tables 5 and 6: dense, multi-crop and combined for D and E, and the two fused.
    combined = {}
    for net in (MAIN, SECOND):
        dense, labels = study.posteriors(net, "dense", net.test_scales)
        crops, _ = study.posteriors(net, "multi_crop", net.test_scales)
        combined[net.name] = (dense + crops) / 2
        measured.protocols[net.name] = {
            "dense": evaluation.top_k_error(dense, labels, 1),
            "multi-crop": evaluation.top_k_error(crops, labels, 1),
            "combined": evaluation.top_k_error(combined[net.name], labels, 1)}
    fused_name = " + ".join(combined)
    fused = evaluation.top_k_error(np.mean(list(combined.values()), axis=0), labels, 1)
    measured.fusion = {**{name: measured.protocols[name]["combined"] for name in combined},
                       fused_name: fused}
    study.step("Tables 5 and 6: " + "; ".join(
        f"{name} " + ", ".join(f"{k} {report.percent(v)}%" for k, v in rows.items())
        for name, rows in measured.protocols.items()) + f"; {fused_name} {report.percent(fused)}%")

    # Appendix A: localisation nets fine-tuned from D.
    for name, mode, all_layers in LOCALISERS:
        config = study.faster(dataclasses.replace(
            main_run.config, model_dir=study.run_dir(f"localisation_{mode}_"
                                                     f"{'all' if all_layers else 'fc'}"),
            task="localisation", box_regression=mode, init_from=main_run.directory,
            warm_start=None,
            data=f"{study.train_source}?boxes={study.images}/boxes/train",
            val_data=f"{study.val_source}?boxes={study.images}/boxes/val", learning_rate=None,
            batch_size=study.batch,
            freeze_convs=not all_layers, epochs=loc_epochs))
        study.train(config)
        localiser = runs.load(config.model_dir).build_model()
        result, details = localisation_eval.centre_crop(
            localiser, config.val_data, test_scale=MAIN.test_scale,
            preprocessing=config.preprocessing)
        measured.localisation[name] = result.top1_error
        if name == LOCALISERS[0][0]:
            full, full_details = localisation_eval.full(
                [localiser], study.model(MAIN)[0], config.val_data,
                test_scale=MAIN.test_scale, preprocessing=config.preprocessing)
            measured.full_localisation = (full.top1_error, full.top5_error)
            measured.box_details = full_details
        study.step(f"localisation, {name}: centre-crop error {report.percent(result.top1_error)}%")

    # Appendix B: D's fc2 descriptors of classes it never saw, against an untrained D's.
    describe_source = f"folder:{study.new_images}/train"
    class_ids = sources.open_single_label(describe_source, purpose="transfer").class_ids
    for name, model in (("trained", study.model(MAIN)[0]),
                        ("untrained", main_run.build_model(weights=False))):
        describe = transfer.Describer(model, test_scales=MAIN.test_scales,
                                      preprocessing=main_run.config.preprocessing)
        train_x, train_y, _ = transfer.labelled_descriptors(describe, describe_source)
        val_x, val_y, _ = transfer.labelled_descriptors(
            describe, f"folder:{study.new_images}/val")
        score = linear.score(linear.fit_linear_svm(train_x, train_y, class_ids), val_x,
                             val_y, class_ids)
        measured.transfer[name] = (score.value, score.images)
    study.step("Appendix B: mean class recall " + ", ".join(
        f"{name} {report.percent(value)}%" for name, (value, _) in measured.transfer.items()))

    measured.notes = study.notes
    measured.seconds = time.perf_counter() - study.start
    measured.histories = {net.name: os.path.join(study.run_dir(net.directory), "history.csv")
                          for net in CLASSIFIERS}
    measured.class_names = main_run.class_names
    with open(os.path.join(study.workdir, MEASUREMENTS), "wb") as file:
        pickle.dump(measured, file)
    study.step(f"report written: {write_report(measured, study.report_dir)}")


def write_report(measured: report.Measurements, report_dir: str) -> str:
    return report.write(measured, report_dir, depth=[net.name for net in DEPTH],
                        jitter=MAIN.name, fixed=[net.name for net in FIXED], crop=CROP,
                        test_scales=MAIN.test_scales,
                        settings=settings(measured),
                        machine=machine(),
                        command="make paper" + (" (--quick)" if measured.quick else ""))


def settings(measured: report.Measurements) -> str:
    """The study's settings, as the report states them."""
    return (
        f"The data: `recipes/scene_data.py`'s scenes, {len(scene_data.CLASSES)} classes, "
        f"{measured.val_images // len(scene_data.CLASSES)} held-out images per class, and "
        f"{len(TRANSFER_CLASSES)} more classes for transfer. Every length of the paper is "
        f"divided by 3.5: {CROP} px crops, S = {S_256} and {S_384} for 256 and 384, "
        f"S in [{S_256}, {S_512}] for [256, 512], Q offsets of {MULTI_SCALE_OFFSET} px for "
        f"32. Every classification net is trained at 1/{round(1 / WIDTH)} of the paper's "
        f"widths for {measured.epochs} epochs at batch {measured.batch}, with the paper's "
        "recipe (SGD with momentum 0.9, weight decay 5e-4, dropout 0.5, random crops, flips "
        "and colour shift, the rate divided by 10 on plateaus) at "
        f"{RATE_FACTOR}x its rate scaled to the batch ({measured.learning_rate:g}). "
        "A and A-LRN start from scratch (Glorot); the other nets start from the trained A, "
        "as the paper's deeper nets did (Sect. 3.1: A's first four convolutions and its "
        "fully-connected layers; the fully-connected layers only for B-5x5, whose "
        "convolutions are all 5x5). The localisation nets are fine-tuned from "
        f"{MAIN.name} for {measured.localisation_epochs} epochs at {RATE_FACTOR}x the paper's "
        "localisation rate scaled to the batch.\n\n"
        "Two choices were measured in a first run of this study (2026-12-05), before the "
        "findings: at the paper's rate scaled to the batch (0.00125) config A reached 29% "
        f"top-1 accuracy in 20 epochs, at {RATE_FACTOR}x 71%; and with every net from "
        "scratch for the same 20 epochs, B reached 42% and B-5x5 stayed at chance (10.6%) "
        "where A reached 68%: at 1,260 steps (the paper's nets took 370K) the deeper nets "
        "need the paper's start from A.")


def machine() -> str:
    """The CPU's model name and core count, for the report."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf8") as file:
            name = next(line.split(":", 1)[1].strip() for line in file
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores"


if __name__ == "__main__":
    app.run(main)

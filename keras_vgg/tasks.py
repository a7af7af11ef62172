"""What a run learns (`RunConfig.task`), one object per task, in the manner of Model Garden's
`Task`: each builds its network, compiles it, makes its training and validation data, says
what the schedule watches, and reads its validation. Runs, training, export and the eval
command ask the run's task instead of branching on its name.

  classification  Sect. 3: softmax over the classes, cross-entropy; the schedule watches
                  validation accuracy.
  localisation    Appendix A: the last FC layer predicts boxes (`keras_vgg.localisation`),
                  Euclidean loss; the schedule watches the validation loss (IoU > 0.5 stays
                  at 0 until boxes are roughly right).

    task = tasks.of(run.config)
    model = task.build(run)                       # the trained net of a run directory
"""

from __future__ import annotations

import math
from collections.abc import Collection

import keras

from keras_vgg import configs, data, localisation, localisation_data, models
from keras_vgg import weights as weight_files
from keras_vgg.requires_tensorflow import tf

# Sect. 3.1: "mini-batch gradient descent ... with momentum ... 0.9".
PAPER_MOMENTUM = 0.9
# A final accuracy that guessing reaches less often than this, yet not beyond chance by
# `above_chance`'s margin, is too few images to tell: the run neither passes nor fails.
GUESSING_RARELY = 0.05
# Sect. 3.1: the S=384 net, initialised from the S=256 one, started at this rate (batch 256).
FINE_TUNE_LEARNING_RATE = 1e-3
# Sect. 3.1: "the learning rate was initially set to 10^-2" (batch 256), for the deeper nets
# too, whose random layers trained beside ones from net A: "we did not decrease the
# learning rate for the pre-initialised layers".
PAPER_LEARNING_RATE = 1e-2


def l2_for_weight_decay(weight_decay: float) -> keras.regularizers.Regularizer | None:
    """Caffe's weight decay `wd` (gradient + wd * w) as a Keras L2 loss: l2(wd / 2)."""
    return keras.regularizers.L2(weight_decay / 2) if weight_decay > 0 else None


def compile_for_training(model: keras.Model, *, learning_rate: float,
                         momentum: float = PAPER_MOMENTUM, steps_per_execution: int = 1) -> None:
    """SGD with momentum on softmax cross-entropy; top-1 (`accuracy`) and top-5 (`top5`)."""
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"),
        ],
        steps_per_execution=steps_per_execution,
    )
    _build_optimizer(model)


def compile_for_localisation(model: keras.Model, mode: str, *, learning_rate: float,
                             momentum: float = PAPER_MOMENTUM) -> None:
    """SGD with momentum on the Euclidean box loss (Appendix A.1); `accuracy` is the share
    of crops whose box overlaps the target by IoU > 0.5 (`localisation.BoxAccuracy`)."""
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum),
        loss=localisation.BoxLoss(mode), metrics=[localisation.BoxAccuracy(mode)])
    _build_optimizer(model)


def _build_optimizer(model: keras.Model) -> None:
    """Makes the optimizer's slots (momentum) for the trainable weights now, in the caller's
    strategy scope. Left to Keras, they are made while the training step is traced, and
    tf.function then traces the step a second time, without making them."""
    model.optimizer.build(model.trainable_variables)


def classifier(run, weights: str | None = None, **options) -> keras.Model:
    """The run's classification network (config, width, crop, classes, dropout), fresh or
    with `weights`; for a localisation run, the net whose classifier its box layer replaces.
    `options` go to `keras_vgg.vgg` (kernel_initializer, kernel_regularizer...)."""
    config = run.config
    return models.vgg(
        config.config, weights=weights, classes=run.num_classes,
        input_shape=(config.crop_size, config.crop_size, 3), dropout=config.dropout,
        width_multiplier=config.width_multiplier, **options)


class Classification:
    """Sect. 3: a run that learns to name the image's class."""

    name = "classification"
    monitor = "val_accuracy"

    def paper_learning_rate(self, config, new_layers: Collection[str] = ()
                            ) -> tuple[float, str]:
        """The paper's starting rate at batch 256 for `config`, and its name for the log:
        its fine-tuning rate when `init_from` provides every layer (the same classes), its
        initial rate from scratch, warm-started, or beside `new_layers` (the layers
        `init_from` leaves new: a classifier for other classes)."""
        if not config.init_from:
            return PAPER_LEARNING_RATE, "rate"
        if not new_layers:
            return FINE_TUNE_LEARNING_RATE, "fine-tuning rate"
        return PAPER_LEARNING_RATE, f"rate with new layers ({', '.join(new_layers)})"

    def check_data(self, opened, what: str) -> None:
        """Raises ValueError unless an opened training source (`what`: "the training data
        'folder:...'") can teach the task."""
        if opened.num_classes < 2:
            raise ValueError(f"{what} has one class ({opened.class_ids[0]!r}): a classifier "
                             "learns to tell classes apart, so give it two class folders or "
                             "more")

    def check_validation_data(self, opened, what: str) -> None:
        """Raises ValueError unless an opened validation source can test the task."""

    def new_layers(self, source_has_head: bool) -> tuple[str, ...]:
        """The layers that stay new when the run starts from other weights (`init_from`):
        a backbone without a head leaves fc1, fc2 and predictions; a classifier of another
        class count leaves predictions (`pretrained.load` keeps those that fit)."""
        return (configs.PREDICTIONS_LAYER,) if source_has_head else configs.HEAD_LAYERS

    def build(self, run, *, weights: str | None = None, **options) -> keras.Model:
        """The run's network, fresh or with `weights`."""
        return classifier(run, weights=weights, **options)

    def training_model(self, run, model: keras.Model, *, kernel_regularizer=None
                       ) -> keras.Model:
        """The network to train, from `model` as it was built and initialised."""
        return model

    def compile(self, model: keras.Model, run) -> None:
        """Compiles `model` to train as `run` says (`runs.Run`: its rate and momentum)."""
        compile_for_training(model, learning_rate=run.initial_learning_rate(),
                             momentum=run.config.momentum)

    def train_dataset(self, source: str, **options) -> tf.data.Dataset:
        return data.train_dataset(source, **options)

    def val_dataset(self, source: str, **options) -> tf.data.Dataset:
        """Centre crops at Q (`data.eval_dataset`'s options but the view)."""
        return data.eval_dataset(source, view="center", **options)

    def learnt(self, result, above_chance) -> bool | None:
        """Whether the net ends beyond chance: top-1 validation accuracy above guessing
        (`above_chance(accuracy, classes, images)`). None when the images are too few to
        tell: even all of them right would not count, or guessing reaches the accuracy
        less often than `GUESSING_RARELY` (10 of 12 images right among 2 classes: once in
        52) without it counting."""
        classes, images = result.run.num_classes, result.val_images
        if above_chance(result.val_accuracy, classes, images):
            return True
        if not above_chance(1.0, classes, images) or (
                images and guessing_reaches(result.val_accuracy, classes, images)
                < GUESSING_RARELY):
            return None
        return False

    def not_learnt(self, result) -> str:
        return (f"its validation accuracy {100 * result.val_accuracy:.1f}% on "
                f"{result.val_images} images is no better than guessing among "
                f"{result.run.num_classes} classes ({100 / result.run.num_classes:.1f}%)")

    def summary(self, result) -> str:
        """Loss and top-1 accuracy; top-5 too beyond 5 classes (with 5 or fewer, the best 5
        hold every class)."""
        line = (f"loss {result.val_loss:.4g}, top-1 accuracy {100 * result.val_accuracy:.1f}% "
                f"(error {100 * (1 - result.val_accuracy):.1f}%)")
        if result.run.num_classes > 5:
            line += f", top-5 accuracy {100 * result.val_top5:.1f}%"
        return line


class Localisation(Classification):
    """Appendix A: a run that learns the box of the image's object, from a classification
    run (`init_from`) or a localisation run; SCR or PCR (`RunConfig.box_regression`)."""

    name = "localisation"
    monitor = "val_loss"
    modes = localisation.MODES  # RunConfig.box_regression

    def paper_learning_rate(self, config, new_layers: Collection[str] = ()
                            ) -> tuple[float, str]:
        return localisation.BOX_LEARNING_RATE, "localisation rate"

    def check_data(self, opened, what: str) -> None:
        self.check_validation_data(opened, what)

    def check_validation_data(self, opened, what: str) -> None:
        if not opened.boxes:
            raise ValueError(f"localisation needs boxes: {what} has none; give "
                             "'folder:DIR?boxes=XML_DIR_OR_LOC_CSV'")

    def new_layers(self, source_has_head: bool) -> tuple[str, ...]:
        return ()

    def build(self, run, *, weights: str | None = None, **options) -> keras.Model:
        """The run's box net: its classifier with the box layer in place of `predictions`
        (initialised as `options` say), fresh or with `weights`."""
        model = self.training_model(run, classifier(run, **options),
                                    kernel_regularizer=options.get("kernel_regularizer"),
                                    kernel_initializer=options.get("kernel_initializer",
                                                                   "glorot_uniform"))
        if weights:
            weight_files.load_weights(model, weights)
        return model

    def training_model(self, run, model: keras.Model, *, kernel_regularizer=None,
                       kernel_initializer: str | None = None) -> keras.Model:
        """`model` itself when it is a box net already (a localisation run's, fine-tuned),
        else the classifier with its `predictions` replaced by the box layer."""
        if localisation.BOX_LAYER in [layer.name for layer in model.layers]:
            return model
        return localisation.localisation_model(
            model, run.config.box_regression,
            kernel_initializer=models.kernel_initializer_from(
                kernel_initializer or run.config.init),
            kernel_regularizer=kernel_regularizer)

    def compile(self, model: keras.Model, run) -> None:
        compile_for_localisation(model, run.config.box_regression,
                                 learning_rate=run.initial_learning_rate(),
                                 momentum=run.config.momentum)

    def train_dataset(self, source: str, **options) -> tf.data.Dataset:
        return localisation_data.train_dataset(source, **options)

    def val_dataset(self, source: str, **options) -> tf.data.Dataset:
        return localisation_data.centre_dataset(source, **options)

    def learnt(self, result, above_chance) -> bool:
        """Whether any validation box overlaps its target by IoU > 0.5."""
        return result.val_accuracy > 0

    def not_learnt(self, result) -> str:
        return "no validation box overlaps its target by IoU > 0.5"

    def summary(self, result) -> str:
        return (f"box loss {result.val_loss:.4g}, the true class's box at IoU > 0.5 on "
                f"{100 * result.val_accuracy:.1f}% (error {100 * (1 - result.val_accuracy):.1f}"
                "%)")


TASKS = {task.name: task for task in (Classification(), Localisation())}


def guessing_reaches(accuracy: float, num_classes: int, images: int) -> float:
    """The probability that guessing among `num_classes` classes gets at least `accuracy`
    of `images` images right: the binomial tail, `accuracy`'s p-value against chance."""
    right = round(accuracy * images)
    chance = 1 / num_classes
    if right <= 0:
        return 1.0
    log_terms = [math.lgamma(images + 1) - math.lgamma(k + 1) - math.lgamma(images - k + 1)
                 + k * math.log(chance) + (images - k) * math.log1p(-chance)
                 for k in range(right, images + 1)]
    largest = max(log_terms)
    return min(1.0, math.exp(largest) * math.fsum(math.exp(t - largest) for t in log_terms))


def of(config) -> Classification:
    """The task of a `RunConfig` (or of a task's name)."""
    name = config if isinstance(config, str) else config.task
    if name not in TASKS:
        raise ValueError(f"task={name!r}: expected one of {tuple(TASKS)}")
    return TASKS[name]

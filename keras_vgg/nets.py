"""Which net: a network, its trained weights and what they expect, as one value.

Evaluation, export, prediction and transfer take a `Net`, built from whichever of these
the user has:

    nets.Net.of_run("runs/mine")                      # a training run's directory
    nets.Net.of_weights("D", "imagenet")              # a config and a weight source
    nets.Net.of_weights("A", "vgg11.pth")             # (keras_vgg.pretrained)
    nets.Net.of_saved_model("exported/mine/1")        # an export (keras_vgg.serving)
    nets.Net.of_model(model, preprocessing="caffe")   # a Keras model in memory

Each carries the preprocessing its weights were trained with and the scales Q to test it
at: a run's own (its S), or what its weight source records (`keras_vgg.pretrained`: Keras'
ImageNet files are caffe at Q = 384, torchvision/timm checkpoints torch at Q = 256), and the
names of its classes in label order.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import keras

from keras_vgg import configs, imagenet, models, pretrained, runs, sources
from keras_vgg.image_ops import CROP_SIZE, TEST_SCALE


@dataclasses.dataclass(frozen=True)
class Net:
    """A trained net and what its weights expect.

    Attributes:
      name: a short name, for tables and as the served model's name: a run's directory
        name, the config's model name (`vgg16`) or an export's model folder.
      preprocessing: the `keras_vgg.preprocess_input` mode of its weights.
      test_scale: the single-scale Q (shorter side, px) it is tested and served at.
      test_scales: the scales Q of multi-scale testing (px).
      class_ids: its classes in label order (ImageNet synsets, folder names, or indices).
      class_names: readable names in the same order.
      config: its network's name (None for an export).
      weights: where its weights are: a run's final weights file, "imagenet", a path, or
        None (an export, or a model in memory).
      crop_size: its training crop side, px (None for an export).
      width_multiplier: its width (None for an export).
      run: the training run it comes from, if any.
      saved_model: the export's version directory, if it is one.
      model: the Keras model, when given in memory (`of_model`).
    """

    name: str
    preprocessing: str
    test_scale: int
    test_scales: tuple[int, ...]
    class_ids: tuple[str, ...]
    class_names: tuple[str, ...]
    config: str | None = None
    weights: str | None = None
    crop_size: int | None = None
    width_multiplier: float | None = None
    run: runs.Run | None = None
    saved_model: str | None = None
    model: keras.Model | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    @classmethod
    def of_run(cls, run: runs.Run | str | os.PathLike, *,
               test_scales: Sequence[int] | None = None) -> Net:
        """A training run's net (a `runs.Run` or its directory): its network, weights,
        preprocessing, classes and the paper's Q set for its S (or `test_scales`).

        Raises:
          ValueError: not a run directory, or the run has not finished.
        """
        run = run if isinstance(run, runs.Run) else runs.load(run)
        if not os.path.isfile(run.weights_path):
            raise ValueError(f"run {run.directory!r} has no trained weights: "
                             f"{run.weights_path} is missing (the run has not finished)")
        config = run.config
        return cls(os.path.basename(os.path.normpath(run.directory)), config.preprocessing,
                   run.test_scale, tuple(test_scales or run.test_scales), run.class_ids,
                   run.class_names, config=config.config, weights=run.weights_path,
                   crop_size=config.crop_size, width_multiplier=config.width_multiplier,
                   run=run)

    @classmethod
    def of_weights(
        cls,
        config: str,
        weights: str | os.PathLike,
        *,
        preprocessing: str | None = None,
        classes: int | None = None,
        class_names: Sequence[str] | None = None,
        crop_size: int = CROP_SIZE,
        width_multiplier: float | None = None,
        test_scales: Sequence[int] | None = None,
    ) -> Net:
        """A net of `config` with `weights` ("imagenet", a weights file or a KerasHub
        preset folder), with the preprocessing and Q its source records (`preprocessing`
        given otherwise: refused where the source records its own, else warned).

        Classes: `class_names` (one per output), or `classes` outputs, by default 1000 with
        ImageNet's names.

        Raises:
          ValueError: an unknown config, a missing source, a preprocessing that
            contradicts the source, or class names that do not match `classes`.
        """
        source = pretrained.identify(weights)
        network = configs.get(config)
        if source.config is not None and source.config != network:
            raise ValueError(f"{weights} is a KerasHub preset of config {source.config.name}, "
                             f"not {network.name}")
        count = classes or (len(class_names) if class_names else imagenet.NUM_CLASSES)
        ids, names = class_labels(count, class_names)
        return cls(network.model_name, pretrained.resolve_preprocessing(source, preprocessing),
                   source.test_scale, tuple(test_scales or source.test_scales), ids, names,
                   config=network.name, weights=source.location, crop_size=crop_size,
                   width_multiplier=width_multiplier or source.width_multiplier or 1.0)

    @classmethod
    def of_saved_model(cls, path: str | os.PathLike) -> Net:
        """An export of `keras_vgg.serving`: its Q, preprocessing and class names, as it
        was exported (it computes them inside its graph).

        Raises:
          ValueError: not a keras_vgg export.
        """
        from keras_vgg import serving  # TensorFlow's SavedModel tools

        path = os.path.abspath(os.fspath(path))
        options = serving.read_options(path)
        ids, names = serving.read_classes(path)
        return cls(os.path.basename(os.path.dirname(path)), options.preprocessing,
                   options.test_scale, (options.test_scale,), ids, names, saved_model=path)

    @classmethod
    def of_model(cls, model: keras.Model, *, name: str | None = None,
                 preprocessing: str = "caffe", test_scales: Sequence[int] = (TEST_SCALE,),
                 class_names: Sequence[str] | None = None) -> Net:
        """A Keras model in memory (a keras_vgg model with its head), with the
        preprocessing and the scales Q its weights need (the single-scale Q is the middle
        one)."""
        ids, names = class_labels(model.output_shape[-1], class_names)
        scales = tuple(test_scales)
        return cls(name or model.name, preprocessing, scales[len(scales) // 2], scales, ids,
                   names,
                   crop_size=model.input_shape[1], model=model)

    def build(self) -> keras.Model:
        """The Keras model (with its head), weights loaded.

        Raises:
          ValueError: the net is an export (it has no Keras model), or its weights do not
            load (the message names the file and layer).
        """
        if self.model is not None:
            return self.model
        if self.saved_model is not None:
            raise ValueError(f"{self.saved_model} is an export: it runs as a SavedModel, "
                             "not as a Keras model")
        if self.run is not None:
            return self.run.build_model()
        return models.vgg(self.config, weights=self.weights, classes=self.num_classes,
                          input_shape=(self.crop_size, self.crop_size, 3),
                          width_multiplier=self.width_multiplier)

    def check_labels(self, source: str, *, split: str = "validation") -> None:
        """Raises a ValueError unless the data source `source` labels this net's classes in
        its order (single-label data)."""
        found = sources.open_single_label(source, split=split, purpose="evaluation")
        runs.check_same_classes(self.class_ids, found.class_ids,
                                what=f"the data {source!r}")


def class_labels(count: int, names: Sequence[str] | None = None
                 ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Class ids and readable names for `count` outputs: `names` (also as the ids), or
    ImageNet's synsets and names for 1000, else the indices as strings.

    Raises:
      ValueError: `names` is not `count` long.
    """
    if names is not None:
        names = tuple(str(name) for name in names)
        if len(names) != count:
            raise ValueError(f"{len(names)} class names for a net with {count} classes")
        return names, names
    if count == imagenet.NUM_CLASSES:
        index = imagenet.class_index()
        return (tuple(synset for synset, _ in index.values()),
                tuple(name for _, name in index.values()))
    ids = tuple(str(i) for i in range(count))
    return ids, ids

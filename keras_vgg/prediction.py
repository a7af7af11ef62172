"""The best classes of image files, from any net (`keras_vgg.nets`): dense evaluation at the
net's Q (Sect. 3.2), with flip averaging by default, through the computation the export
serves (`keras_vgg.serving`): the same function traced here for a Keras net, or the
SavedModel's own `image_bytes` signature for an export, so that prediction, the export and
TF-Serving answer alike.

    predictor = prediction.Predictor(nets.Net.of_run("runs/mine"))
    for answer in predictor.predict(["cat.jpg", "dog.png"]):
        print(answer.image, answer.classes[0])        # ("n02123045", "tabby", 0.52)

A file that cannot be read, is not an image, or is beyond the bounds (`serving`'s
`max_pixels`, 8:1) gets an `error` instead of classes, naming why.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from keras_vgg import nets, serving
from keras_vgg.requires_tensorflow import tf

DEFAULT_TOP_K = serving.DEFAULT_TOP_K


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One image's answer.

    Attributes:
      image: the file's path, as given.
      classes: the best classes, best first: `(class id, class name, probability)`.
      error: why the image has no classes (unreadable, not an image, beyond the bounds),
        or None.
    """

    image: str
    classes: tuple[tuple[str, str, float], ...] = ()
    error: str | None = None

    def to_json(self) -> dict:
        if self.error is not None:
            return {"image": self.image, "error": self.error}
        return {"image": self.image, "predictions": [
            {"class": class_id, "name": name, "probability": probability}
            for class_id, name, probability in self.classes]}


class Predictor:
    """Answers `predict(paths)` for one net, one image at a time (each its own size).

    Args:
      net: any `nets.Net`; an export answers with its own graph (its Q and flip).
      top_k: classes per answer (at most the net's).
      flip: also run the mirror image and average (the paper's dense evaluation; twice the
        compute). None: yes, or as exported for an export.

    Raises:
      ValueError: `top_k` below 1, or `flip` given for an export (its graph fixes it).
    """

    def __init__(self, net: nets.Net, *, top_k: int = DEFAULT_TOP_K, flip: bool | None = None):
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self.net = net
        self.top_k = min(top_k, net.num_classes)
        if net.saved_model is not None:
            if flip is not None:
                raise ValueError(f"{net.saved_model} averages with the mirror image as it was "
                                 "exported (its graph fixes it): leave flip unset")
            self._serve = tf.saved_model.load(net.saved_model).signatures[
                serving.SIGNATURE_BYTES]
            return
        options = serving.ServingOptions(test_scale=net.test_scale,
                                         preprocessing=net.preprocessing,
                                         flip=True if flip is None else flip)
        module = serving.ServingModule(net.build(), options=options,
                                       class_names=net.class_names)
        function, signature = module.signatures()[serving.SIGNATURE_BYTES]
        self._serve = tf.function(function, input_signature=signature, autograph=False)

    def predict_one(self, path: str) -> Prediction:
        """The answer for one image file."""
        try:
            with open(path, "rb") as file:
                contents = file.read()
        except OSError as error:
            return Prediction(path, error=f"cannot read it ({error.strerror})")
        try:
            outputs = self._serve(**{serving.INPUT_BYTES: tf.constant([contents])})
        except tf.errors.InvalidArgumentError as error:
            return Prediction(path, error=_reason(error))
        probabilities = outputs["probabilities"].numpy()[0]
        best = np.argsort(-probabilities, kind="stable")[:self.top_k]
        return Prediction(path, tuple((self.net.class_ids[i], self.net.class_names[i],
                                       float(probabilities[i])) for i in best))

    def predict(self, paths: Iterable[str]) -> Iterator[Prediction]:
        """The answers for image files, in order."""
        for path in paths:
            yield self.predict_one(path)


def _reason(error: tf.errors.InvalidArgumentError) -> str:
    """The first line of a refusal from the serving graph, without the request's index."""
    message = error.message
    asserted = re.search(r"assertion failed: \[(.*)\]", message)
    text = asserted.group(1) if asserted else message.strip().splitlines()[0]
    return re.sub(r"^image_bytes\[\d+\] ", "", text).rstrip("]").strip()


def image_files(arguments: Sequence[str]) -> list[str]:
    """The files `arguments` name: files, globs (`'photos/*.jpg'`) and folders (their files,
    not hidden ones), in order.

    Raises:
      ValueError: an argument that names no file.
    """
    found = []
    for argument in arguments:
        if os.path.isdir(argument):
            inside = sorted(os.path.join(argument, name) for name in os.listdir(argument)
                            if not name.startswith("."))
            found += [path for path in inside if os.path.isfile(path)]
        elif os.path.isfile(argument):
            found.append(argument)
        else:
            matches = sorted(path for path in glob.glob(argument) if os.path.isfile(path))
            if not matches:
                raise ValueError(f"{argument}: no such file, and no files match it")
            found += matches
    return found

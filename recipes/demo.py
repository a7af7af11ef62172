"""Demo: builds every network of the paper and runs each once on an image.

Until the training demo lands this is the README's first command (`make demo`): it shows
Table 1 as built Keras models. Usage:

    python recipes/demo.py                        # every configuration, paper widths
    python recipes/demo.py --configs=D,E --summary
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import keras_vgg  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("configs", list(keras_vgg.CONFIGS), "Configurations to build, by name.")
flags.DEFINE_float("width_multiplier", 1.0, "Scales conv widths and FC units (1.0: paper).")
flags.DEFINE_bool("summary", False, "Print each model's Keras summary.")
flags.DEFINE_integer("seed", 0, "Seed of the weights and of the test image.")


def _known_configs(names: list[str]) -> bool:
    for name in names:
        try:
            keras_vgg.configs.get(name)
        except ValueError as error:
            raise flags.ValidationError(str(error)) from error
    return True


flags.register_validator("configs", _known_configs)


def main(argv):
    del argv
    image = np.random.default_rng(FLAGS.seed).uniform(0, 255, (1, 224, 224, 3))
    batch = keras_vgg.preprocess_input(image.astype("float32"))
    header = f"{'config':8} {'model':12} {'weight layers':>13} {'parameters':>13}  output"
    print(header)
    print("-" * len(header))
    for name in FLAGS.configs:
        keras.utils.set_random_seed(FLAGS.seed)
        config = keras_vgg.configs.get(name)
        model = keras_vgg.vgg(config, width_multiplier=FLAGS.width_multiplier)
        if FLAGS.summary:
            model.summary()
        probabilities = np.asarray(model(batch, training=False))
        if probabilities.shape != (1, 1000) or not np.isclose(probabilities.sum(), 1, atol=1e-3):
            raise RuntimeError(f"{config.name}: output is not a distribution over 1000 classes")
        print(
            f"{config.name:8} {model.name:12} {config.weight_layers:13d} "
            f"{model.count_params():13,d}  {probabilities.shape}"
        )
        keras.backend.clear_session()


if __name__ == "__main__":
    app.run(main)

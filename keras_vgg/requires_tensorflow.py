"""TensorFlow, for the modules that need it, with an error that says what to install.

The models (`keras_vgg.vgg`, `VGG16`..., `layers`, `weights`, `dense`, `imagenet`,
`anatomy`) are Keras 3 code and run on any backend without TensorFlow. The input pipeline,
training, evaluation and serving are built on `tf.data`, `tf.distribute` and SavedModel, so
`image_ops`, `guard`, `data`, `sources`, `runs`, `callbacks`, `distribute`, `training`,
`inference`, `evaluation` and `serving` import TensorFlow through here, and trace their
functions with `unconverted`.
"""

try:
    import tensorflow as tf
except ImportError as error:
    raise ImportError(
        "this part of keras_vgg (the tf.data pipeline, training, evaluation or serving) needs "
        "TensorFlow: pip install 'keras-vgg[cpu]' (tensorflow-cpu). The models "
        "(keras_vgg.vgg, VGG16, weights, dense, anatomy) run without it on the JAX and "
        "PyTorch backends"
    ) from error


def unconverted(function):
    """`function` traced as written, without AutoGraph's conversion to graph control flow:
    for the package's tf.data and tf.function code, which branches with `tf.cond` and
    never on a tensor in Python. Converting it cost each process about 1.8 s before its
    first pipeline (the source of every function it calls is parsed and rewritten), a
    sixth of a small training run's wall time."""
    return tf.autograph.experimental.do_not_convert(function)


__all__ = ["tf", "unconverted"]

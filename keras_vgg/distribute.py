"""Where training runs: the strategy TF_CONFIG and the visible GPUs call for, the directory
each process writes, and what multi-worker training needs beyond Keras.

- One host: MirroredStrategy over its GPUs (the paper's 4-GPU data parallelism), else the
  default strategy.
- Several hosts: MultiWorkerMirroredStrategy from TF_CONFIG. The chief writes `model_dir`;
  every other worker writes the same files under `model_dir/workers/<task>_<index>`.
- `fit_under_multi_worker`: the one place that works around Keras 3.15's `fit` under that
  strategy (keras-team/keras#20585, tensorflow/tensorflow#72388);
  `tests/test_distribute.py` fails when Keras changes what it patches.

Each worker reads its own shard of the data, and workers that would resume from different
epochs stop and say so. One and four replicas reach the same weights.
"""

from __future__ import annotations

import json
import os

import keras

from keras_vgg.requires_tensorflow import tf


def _several_tasks(cluster: dict) -> bool:
    """Whether a cluster spec (`{"worker": [...], ...}`) names more than one process."""
    return sum(len(tasks) for tasks in cluster.values()) > 1


def cluster_from_environment() -> dict[str, list[str]]:
    """The cluster TF_CONFIG describes (`{"worker": ["host:port", ...], ...}`), or {};
    checked, with this process's task, so that a malformed TF_CONFIG is named here rather
    than deep inside TensorFlow."""
    text = os.environ.get("TF_CONFIG") or "{}"
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}): {text!r}") from error
    cluster = config.get("cluster", {}) if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not all(
            isinstance(tasks, list) and all(isinstance(t, str) for t in tasks)
            for tasks in cluster.values()):
        raise ValueError('TF_CONFIG must be {"cluster": {"worker": ["host:port", ...]}, "task": '
                         f'{{"type": "worker", "index": i}}}}; got {text!r}')
    if _several_tasks(cluster):
        task = config.get("task")
        if not (isinstance(task, dict) and task.get("type") in cluster
                and isinstance(task.get("index"), int)
                and 0 <= task["index"] < len(cluster[task["type"]])):
            raise ValueError(f"TF_CONFIG's task {task!r} is not one of its cluster {cluster}: "
                             'expected {"type": "worker", "index": i}')
    return cluster


def strategy_from_environment() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG describes a cluster of several tasks (each
    worker uses all its GPUs, or its CPU); else MirroredStrategy over the visible GPUs; else
    the default (single-device) strategy."""
    if _several_tasks(cluster_from_environment()):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The strategy as the user knows it (TF's class names are internal aliases)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "MirroredStrategy"
    return "the default strategy"


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` spans several processes (a MultiWorkerMirroredStrategy cluster)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    return _several_tasks(strategy.cluster_resolver.cluster_spec().as_dict())


def worker_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str:
    """Where this process writes: `model_dir` for the chief (or a single process), and
    `model_dir/workers/<task>_<index>` for the other workers of a cluster, whose checkpoints
    and logs repeat the chief's (every worker holds the same weights)."""
    if not is_multi_worker(strategy) or strategy.extended.should_checkpoint:
        return model_dir
    resolver = strategy.cluster_resolver
    return os.path.join(model_dir, "workers", f"{resolver.task_type}_{resolver.task_id}")


def workers_agree(strategy: tf.distribute.Strategy, value: int) -> tuple[bool, float]:
    """Whether every worker of `strategy` holds the same integer `value` (a collective: all
    workers must call it); also the mean of the values, for the error message."""
    # ReduceOp has only SUM and MEAN: all equal <=> n * sum(v^2) == sum(v)^2.
    value = float(value)
    totals = strategy.reduce("SUM", strategy.run(
        lambda: tf.constant([1.0, value, value * value], tf.float64)), axis=None)
    count, total, squares = (float(v) for v in totals.numpy())
    return count * squares == total * total, total / count


# --- Keras 3.15 under MultiWorkerMirroredStrategy --------------------------------------------


def fit_under_multi_worker(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Lets Keras 3.15's `model.fit` / `evaluate` run `model` under MultiWorkerMirroredStrategy
    with several workers; does nothing otherwise.

    Keras' own code fails there twice, with two real workers:
    - keras-team/keras#20585: before the first step, fit all-reduces a whole input batch
      across workers to build the model symbolically (`Model._maybe_symbolic_build`), and
      MultiWorkerMirroredStrategy cannot reduce a nested batch. The build only needs
      shapes: this worker's own part serves.
    - tensorflow/tensorflow#72388: each step's logged values are averaged across replicas
      along axis 0, which a scalar lacks. The steps here return each scalar as a `[1]`
      vector, so the per-step logs are the mean over replicas, the same on every worker
      (the per-epoch logs read the metrics across all replicas, as without workers).
    """
    if not is_multi_worker(strategy):
        return

    def build_from_local_batch(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda value: strategy.experimental_local_results(value)[0],
                    next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    def as_vectors(step):
        def step_with_vector_logs(data):
            return tf.nest.map_structure(
                lambda value: tf.reshape(value, [-1]) if tf.convert_to_tensor(value).shape.rank
                == 0 else value,
                step(data))

        return step_with_vector_logs

    model._maybe_symbolic_build = build_from_local_batch
    model.train_step = as_vectors(model.train_step)
    model.test_step = as_vectors(model.test_step)

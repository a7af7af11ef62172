import inspect
import re

import keras
import pytest
from conftest import NARROW

import keras_vgg
from keras_vgg import distribute


def test_outside_a_cluster_nothing_multi_worker_applies(monkeypatch, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = distribute.strategy_from_environment()
    assert not distribute.is_multi_worker(strategy)
    assert distribute.strategy_name(strategy) == "the default strategy"
    assert distribute.worker_dir(str(tmp_path), strategy) == str(tmp_path)
    model = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=3)
    steps = model.train_step, model.test_step
    distribute.fit_under_multi_worker(model, strategy)
    assert (model.train_step, model.test_step) == steps
    assert distribute.workers_agree(strategy, 3) == (True, 3.0)


@pytest.mark.parametrize("tf_config, message", [
    ('{"cluster": ', "TF_CONFIG is not valid JSON"),
    ("[]", "TF_CONFIG must be"),
    ('{"cluster": ["localhost:1"]}', "TF_CONFIG must be"),
    ('{"cluster": {"worker": "localhost:1"}}', "TF_CONFIG must be"),
    ('{"cluster": {"worker": ["localhost:1", "localhost:2"]}}', "task None is not one of"),
    ('{"cluster": {"worker": ["localhost:1", "localhost:2"]}, '
     '"task": {"type": "worker", "index": 2}}', "is not one of its cluster"),
])
def test_a_malformed_tf_config_is_named(monkeypatch, tf_config, message):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message):
        distribute.strategy_from_environment()


def squeezed(source: str) -> str:
    return re.sub(r"\s+", "", source)


def test_the_keras_code_that_fit_under_multi_worker_works_around_is_unchanged():
    """`distribute.fit_under_multi_worker` replaces `_maybe_symbolic_build` and wraps the
    train and test steps because of the two lines below (Keras 3.15). When this fails,
    Keras has changed them: run tests/test_recipes.py's two-worker tests without the
    workaround, and delete it if they pass; otherwise adapt it to the new code."""
    from keras.src.backend.tensorflow import trainer

    assert list(inspect.signature(trainer.TensorFlowTrainer._maybe_symbolic_build).parameters
                ) == ["self", "iterator", "data_batch"]
    assert "data_batch" in inspect.signature(keras.Model._symbolic_build).parameters
    # The iterator yields (begin, end, iterator) triples, as build_from_local_batch reads it.
    assert squeezed("for _, _, it in iterator: maybe_distributed_data_batch = next(it)") in (
        squeezed(inspect.getsource(trainer.TensorFlowTrainer._maybe_symbolic_build)))
    # keras-team/keras#20585: the whole distributed batch is reduced across workers.
    assert squeezed('data_batch = self.distribute_strategy.reduce("MEAN", '
                    "maybe_distributed_data_batch, axis=None,)") in squeezed(
        inspect.getsource(trainer.TensorFlowTrainer._maybe_symbolic_build))
    # tensorflow/tensorflow#72388: scalar logs are averaged across workers along axis 0.
    assert squeezed('return strategy.reduce("MEAN", v, axis=0)') in squeezed(
        inspect.getsource(trainer.reduce_per_replica))

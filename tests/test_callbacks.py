import csv
import math
import os
import signal
import time

import keras
import numpy as np
import pytest
from conftest import NARROW, names, tiny_run_config

import keras_vgg
from keras_vgg import callbacks, checkpoints, runs, tasks, weights


def tiny_model():
    return keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=4,
                         dropout=0.0)


def random_batches(count=16, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 50, (count, 32, 32, 3)).astype("float32"),
            rng.integers(0, 4, count).astype("int32"))


def run_callbacks(model_dir, state=None, *, global_batch_size, patience=2, **options):
    """The callbacks of a run of four classes in `model_dir`."""
    run = runs.Run.of(tiny_run_config(model_dir, "x", batch_size=global_batch_size,
                                      plateau_patience=patience, plateau_min_steps=0),
                      ("a", "b", "c", "d"))
    return callbacks.callbacks(run, state=state or checkpoints.RunState(), **options)


def test_schedule_divides_by_ten_three_times_then_stops_each_announced_after_its_epoch(
        tmp_path, capsys):
    x, y = random_batches(16)
    model = tiny_model()
    # a rate too small to learn anything: the validation loss never improves
    tasks.compile_for_training(model, learning_rate=1e-9, momentum=0.0)
    state = checkpoints.RunState()
    model.fit(x, y, validation_data=(x[:8], y[:8]), epochs=40, batch_size=16,
              callbacks=run_callbacks(tmp_path, state, global_batch_size=16, patience=1,
                                      monitor="val_loss"), verbose=2)
    with open(tmp_path / "history.csv") as file:
        history = list(csv.DictReader(file))
    rates = [round(math.log10(float(row["learning_rate"]))) for row in history]
    # epoch 1 sets the best; epochs 2, 3, 4 each plateau and drop; epoch 5 stops
    assert rates == [-9, -9, -10, -11, -12]
    assert round(math.log10(float(model.optimizer.learning_rate))) == -12
    assert (state.epoch, state.learning_rate_drops) == (5, 3)
    assert all(float(row["images_per_second"]) > 0 for row in history)
    lines = capsys.readouterr().out.splitlines()
    # Keras' epoch line shows the metrics only; the change follows it, before the next epoch
    epoch_2 = lines.index("Epoch 2/40")
    assert lines[epoch_2 + 1].startswith("1/1 - ") and "val_loss" in lines[epoch_2 + 1]
    assert not any(name in lines[epoch_2 + 1] for name in callbacks.EpochLine.NOT_METRICS)
    assert names(lines[epoch_2 + 2], "Epoch 2", "1e-09 -> 1e-10", "1 of 3"), lines
    assert lines[epoch_2 + 3] == "Epoch 3/40"
    assert names(lines[-1], "3 learning-rate drops", "stopping"), lines


def schedule_rates(accuracies, *, steps_per_epoch=10, **options):
    """The rate each epoch trains at, under a schedule fed these validation accuracies."""
    model = tiny_model()
    tasks.compile_for_training(model, learning_rate=1.0, momentum=0.0)
    schedule = callbacks.PaperSchedule(checkpoints.RunState(), **options)
    schedule.set_model(model)
    rates = []
    for epoch, accuracy in enumerate(accuracies):
        for step in range(steps_per_epoch):
            schedule.on_train_batch_end(step)
        logs = {"val_accuracy": accuracy}
        schedule.on_epoch_end(epoch, logs)
        rates.append(round(math.log10(logs["learning_rate"])))
        if model.stop_training:
            break
    return rates


def test_a_plateau_lasts_patience_epochs_and_min_steps():
    flat = [0.5] * 12
    assert schedule_rates(flat, patience=1) == [0, 0, -1, -2, -3]
    assert schedule_rates(flat, patience=2) == [0, 0, 0, -1, -1, -2, -2, -3, -3]
    # 10 steps an epoch: a plateau needs 3 epochs to reach 25 steps
    assert schedule_rates(flat, patience=1, min_steps=25) == [0, 0, 0, 0, -1, -1, -1, -2,
                                                              -2, -2, -3, -3]
    assert schedule_rates([0.5, 0.6, 0.6, 0.7, 0.7, 0.7], patience=2) == [0, 0, 0, 0, 0, 0]


def test_no_plateau_counts_while_validation_accuracy_is_at_chance():
    # Four classes on 400 images: chance is 25%, and a guesser's accuracy varies by 2.2%.
    guessing = [0.25, 0.27, 0.24, 0.3, 0.26, 0.25, 0.28]
    assert schedule_rates(guessing, patience=1, num_classes=4,
                          validation_images=400) == [0] * 7
    assert schedule_rates(guessing, patience=1) == [0, 0, 0, -1, -1, -2, -3]
    assert schedule_rates([0.25, 0.6, 0.6, 0.6], patience=1, num_classes=4,
                          validation_images=400) == [0, 0, 0, -1]


@pytest.mark.parametrize("accuracy, classes, images, above", [
    (0.11, 10, None, True), (0.10, 10, None, False), (0.14, 10, 400, False),
    (0.15, 10, 400, True), (0.6, 2, 100, False), (0.66, 2, 100, True)])
def test_above_chance_means_beyond_three_standard_errors_of_guessing(accuracy, classes,
                                                                      images, above):
    assert callbacks.above_chance(accuracy, classes, images) is above


def test_throughput_is_the_epochs_training_images_over_its_training_time(monkeypatch):
    clock = iter([10.0, 11.0, 12.5])  # epoch start, then the end of each of two steps
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    throughput = callbacks.Throughput(global_batch_size=16)
    throughput.on_epoch_begin(0)
    throughput.on_train_batch_end(0)
    throughput.on_train_batch_end(1)
    logs = {}
    throughput.on_epoch_end(0, logs)  # validation, after the last step, is not counted
    assert logs == {"training_steps": 2, "images_per_second": 32 / 2.5}


class BlowUpAtEpoch(keras.callbacks.Callback):
    """Multiplies the output kernel by `factor` at the start of `epoch` (inf: sets it to
    inf), as diverging training does."""

    def __init__(self, epoch, factor=np.inf):
        super().__init__()
        self.epoch = epoch
        self.factor = factor
        self.good = None

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.good = [w.copy() for w in self.model.get_weights()]
            kernel = self.model.get_layer("predictions").kernel
            kernel.assign(np.full(kernel.shape, np.inf, "float32") if np.isinf(self.factor)
                          else kernel * self.factor)


def advise(cause):
    return f"Lower the rate ({cause})."


def fit_until_it_blows_up(tmp_path, factor, **fit_options):
    x, y = random_batches(32)
    model = tiny_model()
    tasks.compile_for_training(model, learning_rate=1e-3, momentum=0.9)
    blow_up = BlowUpAtEpoch(1, factor)
    with pytest.raises(callbacks.LossDiverged) as error:
        model.fit(x, y, epochs=5, batch_size=8, verbose=0, **fit_options,
                  callbacks=[*run_callbacks(tmp_path, global_batch_size=8, advice=advise),
                             blow_up])
    return str(error.value), blow_up


def test_nan_loss_stops_and_keeps_the_last_good_epoch(tmp_path):
    message, blow_up = fit_until_it_blows_up(tmp_path, np.inf, validation_data=random_batches(8))
    # the run ended by raising: the checkpoint of epoch 1 is kept, and named
    last_good_path = os.path.join(checkpoints.latest(str(tmp_path)), checkpoints.WEIGHTS_FILE)
    assert names(message, "epoch 2", "nan", "step 1", advise("growth"), last_good_path), message
    assert checkpoints.saved_epoch(str(tmp_path)) == 1
    last_good = tiny_model()
    weights.load_weights(last_good, last_good_path)
    for saved, expected in zip(last_good.get_weights(), blow_up.good, strict=True):
        np.testing.assert_array_equal(saved, expected)


def test_a_loss_grown_by_orders_of_magnitude_stops_before_it_is_nan(tmp_path):
    message, _ = fit_until_it_blows_up(tmp_path, 1e4, validation_data=random_batches(8))
    assert names(message, "epoch 2", "grew", "step 1", "100 times", advise("growth")), message


def test_a_first_loss_far_above_chance_stops_at_once(tmp_path):
    x, y = random_batches(8)
    model = keras_vgg.vgg("A", width_multiplier=NARROW, input_shape=(32, 32, 3), classes=4,
                          kernel_initializer=keras.initializers.RandomNormal(stddev=0.5))
    tasks.compile_for_training(model, learning_rate=1e-3)
    with pytest.raises(callbacks.LossDiverged) as error:
        model.fit(x, y, epochs=1, batch_size=8, verbose=0,
                  callbacks=run_callbacks(tmp_path, global_batch_size=8))
    assert names(str(error.value), "started at", "100 times", "1.39", "No epoch"), error.value


@pytest.mark.parametrize("val_loss", [float("inf"), float("nan")])
def test_an_infinite_validation_loss_stops(tmp_path, val_loss):
    guard = callbacks.DivergenceGuard(checkpoints.RunState(), num_classes=4, advice=advise,
                                      model_dir=str(tmp_path))
    guard.set_model(tiny_model())
    guard.on_epoch_begin(2)
    with pytest.raises(callbacks.LossDiverged) as error:
        guard.on_epoch_end(2, {"loss": 1.0, "val_loss": val_loss})
    assert names(str(error.value), "epoch 3", f"validation loss is {val_loss}",
                 advise("growth"), "No epoch"), error.value
    guard.on_epoch_end(2, {"loss": 1.0, "val_loss": 1.0})


def test_a_falling_loss_is_not_divergence(tmp_path):
    x, y = random_batches(16)
    model = tiny_model()
    tasks.compile_for_training(model, learning_rate=1e-2)
    state = checkpoints.RunState()
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, validation_data=(x, y),
              callbacks=run_callbacks(tmp_path, state, global_batch_size=8))
    assert state.epoch == 3
    # Growth is judged on 32 images, 4 steps of 8, here two epochs of 2 steps: the lowest
    # such mean is at most the mean of any two consecutive epochs' losses.
    means = model.history.history["loss"]
    pairs = zip(means[:-1], means[1:], strict=True)
    assert state.reference_loss <= min((a + b) / 2 for a, b in pairs) + 1e-6


def test_the_step_loss_is_recovered_from_kerass_running_means(tmp_path):
    guard = callbacks.DivergenceGuard(checkpoints.RunState(), num_classes=4, advice=str,
                                      model_dir=str(tmp_path))
    guard.on_epoch_begin(0)
    for batch, mean in enumerate([2.0, 1.5, 1.0]):  # step losses 2, 1, 0
        guard.on_train_batch_end(batch, {"loss": mean})
    assert guard.state.reference_loss == pytest.approx(0.0)
    # 1.0 -> a mean of 31 at step 4 is a step loss of 121: over 100 x max(0, 0.1 ln 4)
    with pytest.raises(callbacks.LossDiverged, match=r"grew from 0.139 to 121 at step 4.*growth"):
        guard.on_train_batch_end(3, {"loss": 31.0})


def test_tensorboard_gets_loss_rate_and_throughput_every_n_steps(tmp_path):
    import tensorflow as tf

    x, y = random_batches(32)
    model = tiny_model()
    tasks.compile_for_training(model, learning_rate=1e-3)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[
        callbacks.StepScalars(str(tmp_path), every=3, global_batch_size=4)])
    scalars = {}
    for events in (tmp_path / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append(
                    (event.step, float(tf.make_ndarray(value.tensor))))
    assert sorted(scalars) == ["steps/images_per_second", "steps/learning_rate", "steps/loss"]
    # 8 steps an epoch: after steps 3 and 6 of each, at the optimizer's count
    assert [step for step, _ in scalars["steps/loss"]] == [3, 6, 11, 14]
    assert all(value == pytest.approx(1e-3) for _, value in scalars["steps/learning_rate"])
    assert all(value > 0 for _, value in scalars["steps/images_per_second"])
    assert all(0 < value < 10 for _, value in scalars["steps/loss"])


def step_losses_to_guard(guard, losses):
    """Feeds `losses` to `guard` as Keras logs them in one epoch: their running means."""
    guard.on_epoch_begin(0)
    for batch, _ in enumerate(losses):
        guard.on_train_batch_end(batch, {"loss": float(np.mean(losses[:batch + 1]))})


def test_one_images_loss_at_a_batch_of_one_is_not_divergence(tmp_path):
    """A batch of 1 (a data set of a few dozen images): one photo the net is sure is of the
    other class costs -ln(1e-4) = 9.2, over 100 times the floor 0.1 ln 2; growth is judged
    on the mean of the last 32 images' losses."""
    sure_and_wrong = [0.01] * 40 + [9.2] + [0.01] * 40
    guard = callbacks.DivergenceGuard(checkpoints.RunState(), num_classes=2, advice=str,
                                      model_dir=str(tmp_path), global_batch_size=1)
    step_losses_to_guard(guard, sure_and_wrong)
    assert guard.state.reference_loss == pytest.approx(0.01)
    # The same step at a batch of 32 is 32 images' mean: that does diverge.
    at_32 = callbacks.DivergenceGuard(checkpoints.RunState(), num_classes=2, advice=str,
                                      model_dir=str(tmp_path), global_batch_size=32)
    with pytest.raises(callbacks.LossDiverged, match=r"grew from 0.0693 to 9.2 at step 41,"):
        step_losses_to_guard(at_32, sure_and_wrong)
    # Growth that lasts still stops a batch of 1, on the mean of its last 32 steps.
    growing = callbacks.DivergenceGuard(checkpoints.RunState(), num_classes=2, advice=str,
                                        model_dir=str(tmp_path), global_batch_size=1)
    with pytest.raises(callbacks.LossDiverged) as error:
        step_losses_to_guard(growing, [0.01] * 40 + [20.0] * 40)
    assert names(str(error.value), "0.0693 to 7.51", "last 32 steps", "step 52"), error.value


@pytest.mark.parametrize("signum, raised", [(signal.SIGINT, KeyboardInterrupt),
                                             (signal.SIGTERM, callbacks.Terminated)])
def test_a_signal_during_fit_is_raised_between_two_steps(signum, raised):
    """Noted where it lands (inside TensorFlow, raising would abort the process), raised at
    the next step's end; the handlers before are back afterwards."""
    before = signal.getsignal(signum)
    stop, reached = callbacks.SignalStop(), []
    with pytest.raises(raised) as caught:
        with stop.noting():
            os.kill(os.getpid(), signum)
            time.sleep(0.01)
            reached.append("after the signal")  # its handler only noted it
            stop.on_train_batch_end(0)
    assert reached and caught.traceback[-2].name == "on_train_batch_end"
    assert signal.getsignal(signum) is before
    stop = callbacks.SignalStop()
    with pytest.raises(raised):  # fit ended before another step: raised as it returns
        with stop.noting():
            os.kill(os.getpid(), signum)
            time.sleep(0.01)

"""Box arithmetic, overlap, the greedy merge and ILSVRC's localisation error, on cases
whose answers are known."""

import keras
import numpy as np
import pytest

from keras_vgg import boxes


def test_centre_and_corners_are_inverse():
    corners = np.array([[10.0, 20.0, 50.0, 40.0], [0.0, 0.0, 1.0, 1.0]])
    np.testing.assert_allclose(boxes.to_centre(corners), [[30, 30, 40, 20], [0.5, 0.5, 1, 1]])
    np.testing.assert_allclose(boxes.to_corners(boxes.to_centre(corners)), corners)


def test_a_box_seen_through_a_window_is_relative_with_its_visible_area():
    window = [20, 10, 100, 200]  # y, x, height, width
    inside, partly, outside = [30, 40, 110, 90], [0, 0, 110, 70], [300, 0, 320, 10]
    relative, shown = boxes.to_window(np.array([inside, partly, outside], np.float32), window)
    np.testing.assert_allclose(relative.numpy(), [
        [0.1, 0.2, 0.5, 0.7],
        [-0.05, -0.2, 0.5, 0.5],  # x 0..10 and y 0..20 lie outside the window
        [1.45, -0.2, 1.55, -0.1]], atol=1e-6)
    # As fractions of the window: 80 x 50 px, 100 x 50 px (of 110 x 70), nothing.
    np.testing.assert_allclose(shown.numpy(), [0.4 * 0.5, 0.5 * 0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(boxes.from_window(relative.numpy()[0], window), inside)


def test_flip_mirrors_x():
    np.testing.assert_allclose(boxes.flip(np.array([0.1, 0.2, 0.4, 0.9])), [0.6, 0.2, 0.9, 0.9])


def test_iou():
    a = np.array([[0.0, 0.0, 2.0, 1.0]])
    b = np.array([[0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 3.0, 1.0], [0.0, 0.0, 2.0, 1.0]])
    np.testing.assert_allclose(boxes.iou(a, b), [[0.5, 0.0, 1.0]])
    # One formula for every caller: numpy (evaluation), tensors (training's metric, serving).
    empty = np.zeros((1, 4))
    assert isinstance(boxes.overlap(a, b), np.ndarray)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(boxes.overlap(keras.ops.convert_to_tensor(a, "float32"),
                                                 keras.ops.convert_to_tensor(b, "float32"))),
        [0.5, 0.0, 1.0])
    assert boxes.overlap(empty, empty)[0] == 0.0


def test_two_close_boxes_merge_and_distant_ones_do_not():
    corners = np.array([[10, 10, 50, 50], [12, 8, 52, 48], [100, 100, 140, 140]], float)
    scores = np.array([0.5, 0.3, 0.6])
    merged, ratings = boxes.greedy_merge(corners, scores)
    np.testing.assert_allclose(ratings, [0.8, 0.6])  # the pair's summed scores rank first
    np.testing.assert_allclose(merged, [[11, 9, 51, 49], [100, 100, 140, 140]])
    merged, ratings = boxes.greedy_merge(corners, scores, overlap=0.95)  # stricter: no merge
    assert len(merged) == 3 and ratings[0] == 0.6


def test_localisation_criterion_on_known_cases():
    truth = [(3, np.array([0.0, 0.0, 2.0, 1.0])), (3, np.array([10.0, 10.0, 20.0, 20.0]))]
    half = np.array([0.0, 0.0, 1.0, 1.0])  # IoU exactly 0.5 with the first: not above it
    assert not boxes.is_localised([(3, half)], truth)
    assert boxes.is_localised([(3, np.array([10.0, 10.0, 19.0, 20.0]))], truth)  # 2nd box
    assert not boxes.is_localised([(4, np.array([10.0, 10.0, 20.0, 20.0]))], truth)  # class
    five = [(7, half)] * 4 + [(3, np.array([0.0, 0.0, 2.0, 1.0]))]
    assert boxes.is_localised(five, truth, k=5) and not boxes.is_localised(five, truth, k=1)
    assert boxes.localisation_error([five, [(3, half)]], [truth, truth], k=5) == 0.5
    with pytest.raises(ValueError, match="1 predictions for 2 images"):
        boxes.localisation_error([five], [truth, truth])

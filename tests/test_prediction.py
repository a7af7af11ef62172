"""Predicting image files (`keras_vgg.prediction`, `keras-vgg-predict`) on real photographs."""

import json

import numpy as np
import pytest
from conftest import run_command

from keras_vgg import evaluation, nets, prediction
from keras_vgg.cli import predict


def test_answers_are_the_papers_dense_evaluation_at_the_runs_q(tiny_run, photographs,
                                                              tmp_path):
    paths = sorted(str(p) for p in photographs.iterdir())
    answers = list(prediction.Predictor(nets.Net.of_run(tiny_run), top_k=3).predict(paths))
    # The same photographs through evaluation's dense protocol (Q=44, flips averaged).
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{p.split('/')[-1]} 0\n" for p in paths))
    probabilities, _ = evaluation.posteriors(
        tiny_run.build_model(), f"folder:{photographs}?labels={labels}&classes="
        f"{_class_file(tiny_run, tmp_path)}", protocol="dense", test_scales=(44,), flip=True)
    for answer, expected in zip(answers, probabilities, strict=True):
        assert answer.error is None and len(answer.classes) == 3
        best = np.argsort(-expected)[:3]
        assert [c[0] for c in answer.classes] == [tiny_run.class_ids[i] for i in best]
        np.testing.assert_allclose([c[2] for c in answer.classes], expected[best], atol=1e-5)


def _class_file(run, tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("\n".join(run.class_ids) + "\n")
    return path


def test_an_export_answers_as_the_net_it_came_from(tiny_run, tiny_export, photographs):
    path = tiny_export
    photo = str(photographs / "chelsea.png")
    exported = prediction.Predictor(nets.Net.of_saved_model(path), top_k=10)
    (served,) = exported.predict([photo])
    (direct,) = prediction.Predictor(nets.Net.of_run(tiny_run), top_k=10,
                                     flip=False).predict([photo])
    assert [c[0] for c in served.classes] == [c[0] for c in direct.classes]
    np.testing.assert_allclose([c[2] for c in served.classes],
                               [c[2] for c in direct.classes], atol=1e-5)
    with pytest.raises(ValueError, match="averages with the mirror image as it was exported"):
        prediction.Predictor(nets.Net.of_saved_model(path), flip=True)


def test_files_that_are_no_images_are_named_and_the_others_answered(tiny_run, photographs,
                                                                   tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "half.jpg").write_bytes((photographs / "astronaut.jpg").read_bytes()[:500])
    predictor = prediction.Predictor(nets.Net.of_run(tiny_run))
    notes, half, missing, photo = predictor.predict(
        [str(tmp_path / "notes.txt"), str(tmp_path / "half.jpg"), str(tmp_path / "gone.jpg"),
         str(photographs / "coffee.JPEG")])
    assert notes.error.startswith("is not a JPEG, PNG, GIF, BMP or WebP file")
    assert half.error and not half.classes
    assert missing.error == "cannot read it (No such file or directory)"
    assert photo.error is None and len(photo.classes) == 5


def test_arguments_may_be_files_globs_and_folders(photographs):
    jpegs = sorted(str(p) for p in photographs.glob("*.jp*g"))
    assert prediction.image_files([str(photographs / "*.jp*g")]) == jpegs
    assert len(prediction.image_files([str(photographs)])) == 3
    with pytest.raises(ValueError, match="no such file, and no files match it"):
        prediction.image_files([str(photographs / "*.gif")])


def test_the_command_prints_a_line_per_image_or_json(tiny_run, photographs, capsys):
    assert run_command(predict, f"--model_dir={tiny_run.directory}", "--top_k=2",
                       str(photographs / "*")) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        name, answer = line.split(": ")
        assert name.startswith(str(photographs))
        first, second = answer.split(", ")
        assert first.rsplit(" ", 1)[0] in tiny_run.class_names and first.endswith("%")
    assert run_command(predict, f"--model_dir={tiny_run.directory}", "--json",
                       str(photographs / "chelsea.png"), "/no/such.jpg") == 1
    output = capsys.readouterr()
    assert "no such file, and no files match it" in output.err


def test_the_command_writes_json_and_exits_1_for_a_skipped_file(tiny_run, photographs,
                                                                tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert run_command(predict, f"--model_dir={tiny_run.directory}", "--json", "--top_k=20",
                       str(photographs / "chelsea.png"), str(tmp_path / "notes.txt")) == 1
    output = capsys.readouterr()
    answers = json.loads(output.out)
    assert answers[0]["image"].endswith("chelsea.png")
    assert len(answers[0]["predictions"]) == 10  # every class of a 10-class net
    assert set(answers[0]["predictions"][0]) == {"class", "name", "probability"}
    assert answers[1] == {"image": str(tmp_path / "notes.txt"), "error": answers[1]["error"]}
    assert f"keras-vgg-predict: skipped {tmp_path / 'notes.txt'}: is not a JPEG" in output.err


@pytest.mark.slow
def test_output_cut_short_by_its_reader_ends_the_command_quietly(tiny_run, photographs,
                                                                 tmp_path):
    """`keras-vgg-predict ... | head -1`: the command stops at the closed pipe with the
    shell's status for it, and writes nothing to stderr."""
    import os
    import shutil
    import subprocess
    import sys

    from keras_vgg.cli import EXIT_BROKEN_PIPE

    for index in range(200):
        shutil.copy(photographs / "chelsea.png", tmp_path / f"{index:03d}.png")
    command = os.path.join(os.path.dirname(sys.executable), "keras-vgg-predict")
    process = subprocess.Popen([command, f"--model_dir={tiny_run.directory}", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().startswith(f"{tmp_path}/000.png: ")
    process.stdout.close()  # as head does after its line
    assert process.wait(timeout=300) == EXIT_BROKEN_PIPE
    assert process.stderr.read() == ""

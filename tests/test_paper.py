"""`make paper` (recipes/paper.py): its scenes, its verdicts, and the whole study in quick
mode, as the Makefile runs it but for `--quick`, in this process."""

import pickle
import re

import numpy as np
import paper_report
import pytest
import scene_data
from conftest import run_recipe
from PIL import Image


@pytest.mark.parametrize("name", scene_data.CLASSES + scene_data.NEW_CLASSES)
def test_a_scene_holds_one_visible_figure_of_its_size_in_its_box(name):
    rng = np.random.default_rng(3)
    for height, width in scene_data.SIZES:
        image, (x0, y0, x1, y1) = scene_data.draw(name, rng, height, width)
        assert image.shape == (height, width, 3) and image.dtype == np.uint8
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        side = min(height, width)
        # The box spans the figure's size: at least a radius, at most its reach both ways.
        low, high = scene_data.RADIUS
        assert max(x1 - x0, y1 - y0) >= 0.7 * low * side
        assert max(x1 - x0, y1 - y0) <= 2 * 1.3 * high * side + 2
        # The figure differs from its surroundings: the box's inside is not the border's.
        inside = image[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)
        border = np.concatenate([image[:2].reshape(-1, 3), image[-2:].reshape(-1, 3)])
        assert np.abs(inside - border.mean(axis=0)).sum() > 20


def test_scenes_vary_the_figures_place_and_size():
    rng = np.random.default_rng(0)
    drawn = [scene_data.draw("circle", rng, 160, 160)[1] for _ in range(40)]
    centres = np.array([((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in drawn])
    sizes = np.array([x1 - x0 for x0, _, x1, _ in drawn])
    assert centres.std(axis=0).min() > 10 and sizes.max() > 1.5 * sizes.min()


def test_scenes_are_written_once_per_design(tmp_path):
    scene_data.write(str(tmp_path), train_per_class=1, val_per_class=1, classes=("ring",))
    image = tmp_path / "train" / "ring" / "ring_0000.JPEG"
    assert Image.open(image).size in {(w, h) for h, w in scene_data.SIZES}
    assert "<xmin>" in (tmp_path / "boxes" / "train" / "ring_0000.xml").read_text()
    stamp = image.stat().st_mtime_ns
    scene_data.write(str(tmp_path), train_per_class=1, val_per_class=1, classes=("ring",))
    assert image.stat().st_mtime_ns == stamp


def test_verdicts_need_two_standard_errors():
    assert paper_report.verdict(0.10, 0.30, 500) == "yes"
    assert paper_report.verdict(0.30, 0.10, 500) == "no"
    assert paper_report.verdict(0.20, 0.21, 500) == "within noise"
    # 2 standard errors at 20% on 500 images: 3.6 points.
    assert paper_report.verdict(0.20, 0.235, 500) == "within noise"
    assert paper_report.verdict(0.20, 0.245, 500) == "yes"
    assert paper_report.expected_full_error(0.2, 0.5) == pytest.approx(0.6)


def run_paper(*args: str) -> str:
    """`python recipes/paper.py <args>`, in this process: what it printed."""
    status, printed = run_recipe("paper", *args)
    assert status == 0, printed[-3000:]
    return printed


@pytest.mark.slow
def test_make_paper_quick_writes_every_findings_row_and_plot(tmp_path):
    """The study end to end on a few images: every net trains, every measurement runs, and
    the report has each finding's row and plot; `--report_only` writes it again from the
    saved measurements."""
    flags = ["--quick", f"--workdir={tmp_path / 'work'}", f"--report_dir={tmp_path}"]
    printed = run_paper(*flags)
    steps = re.findall(r"^\[(\d+)\] +\d+m\d\ds  (.*)$", printed, re.MULTILINE)
    assert [int(number) for number, _ in steps] == list(range(1, len(steps) + 1))
    assert steps[-1][1].startswith("report written")
    report = (tmp_path / "report.md").read_text()
    assert "Quick mode" in report
    rows = re.findall(r"^\| ([1-8]) \| (.+?) \| .+ \| .+ \| (yes|no|within noise)"
                      r"( \([^)]+ at chance\))? \|$", report, re.MULTILINE)
    assert sorted({row[0] for row in rows}) == [str(n) for n in range(1, 9)]
    assert len(rows) == 12
    for png in re.findall(r"!\[[^]]*\]\(([a-z]+\.png)\)", report):
        assert (tmp_path / png).stat().st_size > 5_000, png
    assert {"depth.png", "scales.png", "protocols.png", "localisation.png", "boxes.png",
            "transfer.png", "curves.png"} <= {p.name for p in tmp_path.glob("*.png")}
    with open(tmp_path / "work" / "measurements.pickle", "rb") as file:
        measured = pickle.load(file)
    assert len(measured.box_details) == len(scene_data.CLASSES)  # one held-out image each

    (tmp_path / "report.md").unlink()
    assert run_paper(*flags, "--report_only").startswith("Report written")
    assert (tmp_path / "report.md").read_text() == report

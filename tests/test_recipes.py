import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_builds_and_runs_the_requested_configs():
    result = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "demo.py"), "--configs=A-LRN,D,B-5x5",
         "--width_multiplier=0.0625"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    assert [(row[0], row[1], row[2]) for row in rows] == [
        ("A-LRN", "vgg11_lrn", "11"), ("D", "vgg16", "16"), ("B-5x5", "vgg13_5x5", "8"),
    ]


def test_demo_rejects_an_unknown_config():
    result = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "demo.py"), "--configs=F"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode != 0
    assert "unknown VGG config 'F'" in result.stderr

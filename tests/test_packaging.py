"""The configs and the bundled data must work from a built wheel, not only from the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from conftest import REPO


def test_wheel_ships_configs_and_runs_from_them(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("sweeplab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"sweeplab/conf/{p.relative_to(REPO / 'conf').as_posix()}" for p in (REPO / "conf").rglob("*.yaml")}
    assert shipped and shipped <= names, shipped - names
    assert "sweeplab/data/assets/names.txt" in names

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    # From the installed wheel (not the checkout): Hydra finds the configs through the package.
    code = (
        "import sys, sweeplab; assert sweeplab.__file__.startswith(sys.argv[1]), sweeplab.__file__; "
        "sys.argv = ['sweeplab-train', '--cfg', 'job', 'model=gru', 'data=names']; "
        "from sweeplab.train import main; main()"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "_target_: sweeplab.models.recurrent.Recurrent" in res.stdout and "cell: gru" in res.stdout

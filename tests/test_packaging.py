import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_manifest_and_sample(tmp_path):
    pytest.importorskip("hatchling")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("napari_matseg-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "napari_matseg/napari.yaml" in names
    assert "napari_matseg/data/ni_superalloy_spot7_180d_3.png" in names
    assert "napari_matseg/data/ATTRIBUTION.md" in names
    assert wheel.stat().st_size < 2_000_000
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt")))
    assert b"napari-matseg = napari_matseg:napari.yaml" in meta


def test_npe2_discovers_the_installed_plugin():
    from npe2 import PluginManager

    pm = PluginManager()
    pm.discover()
    manifest = pm.get_manifest("napari-matseg")
    top = yaml.safe_load((ROOT / "napari.yaml").read_text())
    assert manifest.display_name == top["display_name"]
    commands = {c.id for c in manifest.contributions.commands}
    assert "napari-matseg.sample_ni_superalloy" in commands


def test_sample_data_loads():
    from napari_matseg.sample_data import ni_superalloy

    (data, meta, kind), = ni_superalloy()
    assert kind == "image" and data.shape == (512, 512) and data.dtype.name == "uint8"
    assert "MIT" in meta["metadata"]["source"]


def test_an_editable_install_finds_the_manifest():
    """npe2 looks for napari.yaml inside the package; in an editable install the package is
    src/napari_matseg, so the manifest must be reachable there too (a link to the top-level one)."""
    inside = ROOT / "src" / "napari_matseg" / "napari.yaml"
    assert inside.read_text() == (ROOT / "napari.yaml").read_text()

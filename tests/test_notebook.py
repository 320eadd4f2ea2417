"""The quickstart notebook executes top to bottom (a short CartPole budget on CPU)."""

import os

import nbformat
from nbclient import NotebookClient

from conftest import REPO


def test_quickstart_notebook_runs(tmp_path):
    nb = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    env = {"QUICKSTART_STEPS": "60000", "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}})
        # Run from a scratch dir, importing the repo: mirror notebooks/ layout.
        (tmp_path / "runs").mkdir()
        os.environ["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert (tmp_path / "runs" / "quickstart" / "metrics.jsonl").exists()

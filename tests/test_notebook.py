"""The notebooks execute top to bottom on CPU in their small settings (a short CartPole budget;
``JAXRL_NOTEBOOK_SMALL=1`` for the arena and N++ tours), from a scratch dir importing the repo."""

import os

import nbformat
from conftest import REPO
from nbclient import NotebookClient


def execute_notebook(name: str, tmp_path, env: dict[str, str]) -> nbformat.NotebookNode:
    """Run ``notebooks/<name>`` in ``tmp_path`` (with a ``runs/`` dir, as notebooks/ has) under
    the extra environment ``env``; the kernel compiles into the tests' compilation cache."""
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    assert all(not cell.get("outputs") and not cell.get("execution_count")
               for cell in nb.cells if cell.cell_type == "code"), f"{name} is committed with outputs"
    env = {"XLA_FLAGS": "", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "JAX_COMPILATION_CACHE_DIR": os.environ.get("JAXRL_TEST_JAX_CACHE",
                                                       "/tmp/jaxrl_arena_test_jax_cache"),
           **env}
    if not env["JAX_COMPILATION_CACHE_DIR"]:
        del env["JAX_COMPILATION_CACHE_DIR"]
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        (tmp_path / "runs").mkdir()
        client = NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def images(nb) -> int:
    return sum("image/png" in out.get("data", {}) or "image/gif" in out.get("data", {})
               for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)


def test_quickstart_notebook_runs(tmp_path):
    execute_notebook("quickstart.ipynb", tmp_path, {"QUICKSTART_STEPS": "60000"})
    assert (tmp_path / "runs" / "quickstart" / "metrics.jsonl").exists()


def test_arena_notebook_runs(tmp_path):
    nb = execute_notebook("arena.ipynb", tmp_path, {"JAXRL_NOTEBOOK_SMALL": "1"})
    assert (tmp_path / "runs" / "arena_notebook" / "episode.gif").stat().st_size > 0
    assert images(nb) >= 3  # the map, the heart.get curve, the GIF


def test_npp_notebook_runs(tmp_path):
    nb = execute_notebook("npp.ipynb", tmp_path, {"JAXRL_NOTEBOOK_SMALL": "1"})
    assert (tmp_path / "runs" / "human_replay.gif").stat().st_size > 0
    assert (tmp_path / "runs" / "npp_notebook" / "episode.gif").stat().st_size > 0
    printed = "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                      for out in cell.outputs)
    assert "won at step 37" in printed  # the human replay ends where the human won
    assert images(nb) >= 3  # the replay GIF, the success curve, the policy's GIF

"""Fixtures shared by the test modules.

Settings come from the schema: ``lltax.config.schema.section_settings(section, {key: value})`` is a
section as a job gets it, every key the test does not name at its schema default, so no test
copies a default. Models of the numerics tests: tests/tiny_models.py; workflow runs and the
job counts they plan: tests/workflow_runs.py.
"""

import pytest


@pytest.fixture(scope="session")
def mnist1d_dir(tmp_path_factory):
    """A data folder holding MNIST-1D, generated once for the whole session (read-only for tests)."""
    from lltax.data.cells import load_dataset

    root = tmp_path_factory.mktemp("shared_data")
    load_dataset("mnist1d", root=str(root))
    return root


# The longest files first. `make test` runs files in two processes (pytest-xdist, `--dist
# loadfile --no-loadscope-reorder`), which take them in this order: the SLURM cluster and the
# workflow runs start at once, one per process, instead of last (xdist's default order puts
# the files with the most tests first, which left the SLURM tests as a tail of several minutes).
LONGEST_FIRST = ("test_slurm_cluster.py", "test_workflow.py", "test_presets.py", "test_external.py")


def pytest_collection_modifyitems(items):
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole, in order

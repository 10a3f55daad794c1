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

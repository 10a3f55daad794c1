"""Atomic outputs."""

import os

import pytest

from lltax.storage.atomic_files import atomic_path, read_json, write_json


def test_write_json_round_trip_with_nan(tmp_path):
    path = tmp_path / "sub" / "x.json"
    write_json(path, {"b": 1.5, "a": float("nan"), "c": [float("inf"), 2]})
    assert read_json(path) == {"a": None, "b": 1.5, "c": [None, 2]}
    assert path.read_text().index('"a"') < path.read_text().index('"b"')  # sorted keys
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []
    write_json(path, {"x": 1})
    with pytest.raises(TypeError):
        write_json(path, {"x": object()})  # not serializable: the old file stays intact
    assert read_json(path) == {"x": 1}


def test_stray_temporary_files_of_a_killed_write_are_removed_by_the_next_write(tmp_path):
    # What a kill -9 between mkstemp and rename leaves behind (the finally never ran).
    stray = tmp_path / ".dataset.nc.abc123.tmp"
    stray.write_text("half")
    other = tmp_path / ".phases.nc.def456.tmp"  # another output's leftover is not this write's business
    other.write_text("half")
    write_json(tmp_path / "dataset.nc", {"x": 1})
    assert not stray.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".phases.nc.def456.tmp", "dataset.nc"]


def test_concurrent_writers_of_a_shared_file_keep_each_others_temporaries(tmp_path):
    """Two jobs generating the same data cache at once: neither removes the other's
    in-progress temporary file, and both renames succeed (the last one wins, identical data)."""
    from lltax.storage.atomic_files import atomic_path

    target = tmp_path / "cache.npz"
    with atomic_path(target, clean_stale=False) as first:
        first.write_text("data")
        with atomic_path(target, clean_stale=False) as second:
            second.write_text("data")
        assert first.exists()  # still there for its own rename
    assert target.read_text() == "data" and not list(tmp_path.glob(".*.tmp"))
    # A workflow output (one writer) cleans up leftovers instead: with two writers that removes
    # the other's file in progress, and its rename fails (the race this option prevents).
    with pytest.raises(FileNotFoundError):
        with atomic_path(target) as first:
            first.write_text("data")
            with atomic_path(target):
                pass


def test_the_mnist1d_cache_is_written_as_a_shared_file(monkeypatch, tmp_path):
    """MNIST-1D generation writes with clean_stale=False (jobs may generate it together)."""
    from lltax.data import loaders
    from lltax.data import mnist1d as mnist1d_cache

    calls = []
    real = mnist1d_cache.atomic_path
    monkeypatch.setattr(mnist1d_cache, "atomic_path", lambda path, **kwargs: calls.append(kwargs) or real(path, **kwargs))
    loaders.load_mnist1d(tmp_path)
    assert calls == [{"clean_stale": False}]


def test_sigterm_runs_the_atomic_writes_cleanup(tmp_path):
    """scancel and Snakemake stop jobs with SIGTERM: lltax's handler turns it into an exit, so a
    write in progress leaves neither the output nor its temporary file."""
    import signal
    import subprocess
    import sys

    script = (
        "import sys, time, signal\n"
        "from lltax import cli\n"
        "from lltax.storage.atomic_files import atomic_path\n"
        "signal.signal(signal.SIGTERM, cli._exit_on_sigterm)\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('partial')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    out = tmp_path / "out" / "record.json"
    process = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    assert len(list(out.parent.iterdir())) == 1  # the temporary, while writing
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(out.parent.iterdir()) == []

"""The PyTorch worker's checks at the edge: a coordinator's fields are checked before use, and an
artifact is taken only whole, in order and with its hash (PROTOCOL.md)."""
import hashlib
import math

import pytest

from basin import worker

JOB = "ab" * 32


def task(**fields):
    header = {"lease": 7, "job": JOB, "job_index": 0, "shard": 0, "start": 0, "end": 4}
    header.update(fields)
    return header


@pytest.mark.parametrize("value", [1e300, math.nan, math.inf, True, None, "3", 2.5, -1, 1 << 60])
def test_integer_fields_refuse_what_is_not_an_exact_integer_in_range(value):
    with pytest.raises(ValueError, match="field 'start'"):
        worker.integer({"start": value}, "start")


def test_integer_fields_take_exact_integers_written_as_floats():
    assert worker.integer({"start": 3.0}, "start") == 3


@pytest.mark.parametrize("fields, message", [
    ({"lease": 0}, "field 'lease'"),
    ({"job": "not-a-hash"}, "field 'job'"),
    ({"end": 0}, "field 'end'"),
    ({"end": 200_000_000}, "field 'end'"),
    ({"inputs": {"a": "xyz"}}, "not an artifact hash"),
    ({"definition": [], "spec": {}, "base": "."}, "must be objects"),
    ({"definition": {}, "spec": {"data": "a.npy"}, "base": ".", "files": {"../etc/passwd": "cd" * 32}},
     "not a path the task's spec names"),
    ({"definition": {}, "spec": {"data": "a.npy"}, "base": ".", "files": {"b.npy": "cd" * 32}},
     "not a path the task's spec names"),
])
def test_a_task_with_a_bad_field_is_refused_naming_it(fields, message):
    with pytest.raises(ValueError, match=message):
        worker.check_task(task(**fields))


def test_a_well_formed_task_passes():
    worker.check_task(task(definition={"kind": "surface"}, spec={"data": "a.npy"}, base=".",
                           files={"a.npy": "cd" * 32}, inputs={"a": "ef" * 32}))


def test_an_artifact_arrives_whole_in_order_and_with_its_hash(tmp_path):
    payload = b"basin" * 1000
    digest = hashlib.sha256(payload).hexdigest()
    fetch = worker.Fetch(str(tmp_path), digest)
    with pytest.raises(ValueError, match="expected 0"):
        fetch.add(10, len(payload), payload[10:])
    assert not fetch.add(0, len(payload), payload[:100])
    assert fetch.add(100, len(payload), payload[100:])
    fetch.finish()
    assert open(worker.cache_path(str(tmp_path), digest), "rb").read() == payload


def test_an_artifact_whose_hash_differs_is_dropped(tmp_path):
    digest = "00" * 32
    fetch = worker.Fetch(str(tmp_path), digest)
    assert fetch.add(0, 3, b"abc")
    with pytest.raises(ValueError, match="arrived with SHA-256"):
        fetch.finish()
    assert not (tmp_path / digest[:2] / digest).exists()


def test_cache_paths_are_artifact_names_only(tmp_path):
    with pytest.raises(ValueError):
        worker.cache_path(str(tmp_path), "../" + "a" * 61)


def test_devices_are_checked_before_any_work():
    import torch
    from basin.evaluate import choose_device
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="not cpu, cuda, cuda:N or mps"):
        choose_device("tpu")
    with pytest.raises(ValueError, match="cuda:99"):
        choose_device("cuda:99")


def test_the_worker_refuses_a_bad_device_or_kind_in_one_sentence(tmp_path):
    import subprocess
    import sys
    worker = [sys.executable, "-m", "basin.worker", "--connect", "tcp://127.0.0.1:1", "--give-up-after", "1",
              "--cache", str(tmp_path)]
    bad_device = subprocess.run(worker + ["--device", "tpu"], capture_output=True, text=True, timeout=60)
    assert bad_device.returncode != 0 and "--device 'tpu'" in bad_device.stderr, bad_device.stderr
    assert "Traceback" not in bad_device.stderr
    bad_kind = subprocess.run(worker + ["--kinds", "surface,hessian"], capture_output=True, text=True, timeout=60)
    assert bad_kind.returncode == 2 and "--kinds: 'hessian' is not one of" in bad_kind.stderr, bad_kind.stderr


@pytest.mark.parametrize("text", ["abc", "0:1", "0:1:0", "1:0:5", "0:1:2000000", "nan:1:3", 5, "0:1:2.5"])
def test_an_axis_basin_would_refuse_is_refused_in_one_sentence(text):
    from basin import points
    with pytest.raises(ValueError, match="axis"):
        points.axis_values(text)


def test_axes_are_basins():
    from basin import points
    assert points.axis_values("-1:1:5") == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert points.axis_values("0.5:0.5:1") == [0.5]
    assert points.axis_values(None) == points.axis_values("-1:1:21")

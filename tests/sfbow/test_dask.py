"""sfbow.dask on a real dask.distributed LocalCluster of two worker processes on 127.0.0.1, with a real
GloVe model and real STS-B sentences: identical vectors, the model loaded once per worker, a worker
killed mid-job, and a model file that workers cannot use refused at submission. Every test is bounded
in time (an alarm, and a timeout on every wait)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")

import cloudpickle  # noqa: E402  (comes with dask)
import dask.array as da  # noqa: E402
import dask.bag as db  # noqa: E402
import dask.dataframe as dd  # noqa: E402

from sfbow import SFBoW  # noqa: E402
from sfbow import dask as sfbow_dask  # noqa: E402
from sfbow.evaluation import load_stsb  # noqa: E402
from sfbow.vectors import default_vectors  # noqa: E402

# The workers unpickle this module's helpers by value: under --import-mode=importlib it is not importable there.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

#: Seconds any one test may take, cluster start included; far above the few seconds each needs.
TEST_LIMIT_S = 180
WAIT_S = 120
N_WORDS = 50_000  # the 50,000 most frequent GloVe words: a real model that loads in a fraction of a second


@pytest.fixture(autouse=True)
def time_bound():
    """Fail (rather than hang) any test that runs past TEST_LIMIT_S."""
    def expire(*_):
        raise TimeoutError(f"test ran past {TEST_LIMIT_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_LIMIT_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def sentences(stsb_dir) -> list[str]:
    dev = load_stsb(stsb_dir / "sts-dev.csv")
    return dev.sentences1 + dev.sentences2  # 3,000 real sentences


@pytest.fixture(scope="module")
def glove_model() -> SFBoW:
    vectors = default_vectors()
    return SFBoW((vectors.words[:N_WORDS], vectors.matrix[:N_WORDS]))


@pytest.fixture(scope="module")
def model_path(glove_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("dask-model") / "glove50k.npz"
    glove_model.save(path)
    return path


@pytest.fixture(scope="module")
def expected(glove_model, sentences) -> np.ndarray:
    return glove_model.encode(sentences, n_threads=1)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as cluster, \
            distributed.Client(cluster, timeout=WAIT_S) as dask_client:
        dask_client.wait_for_workers(2, timeout=WAIT_S)
        yield dask_client


def _compute(client, collection):
    return client.compute(collection).result(timeout=WAIT_S)


def test_bag_array_and_frame_give_the_vectors_of_encode(client, model_path, sentences, expected):
    bag = db.from_sequence(sentences, npartitions=7)
    unknown = sfbow_dask.encode_bag(bag, model_path)
    assert np.isnan(unknown.chunks[0][0])  # a bag does not know its lengths ...
    np.testing.assert_array_equal(_compute(client, unknown), expected)
    counted = sfbow_dask.encode_bag(bag, model_path, lengths=True)  # ... unless asked to count them
    assert sum(counted.chunks[0]) == len(sentences) and counted.npartitions == bag.npartitions

    strings = da.from_array(np.array(sentences, dtype=object), chunks=400)
    vectors = sfbow_dask.encode_array(strings, model_path)
    assert vectors.chunks == (strings.chunks[0], (expected.shape[1],))
    np.testing.assert_array_equal(_compute(client, vectors), expected)

    frame = dd.from_pandas(pd.DataFrame({"text": sentences, "id": np.arange(len(sentences))}), npartitions=5)
    encoded = sfbow_dask.encode_frame(frame, model_path, column="text")
    result = _compute(client, encoded)
    assert list(result.columns[:2]) == ["v0", "v1"] and (result.dtypes == np.float32).all()
    np.testing.assert_array_equal(result.index.to_numpy(), np.arange(len(sentences)))
    np.testing.assert_array_equal(result.to_numpy(), expected)


def test_dask_writers_stream_the_vectors_to_zarr_and_parquet(client, model_path, sentences, expected, tmp_path):
    zarr = pytest.importorskip("zarr")
    strings = da.from_array(np.array(sentences, dtype=object), chunks=500)
    store = sfbow_dask.encode_array(strings, model_path).to_zarr(str(tmp_path / "vectors.zarr"), compute=False)
    client.compute(store).result(timeout=WAIT_S)  # the workers write their chunks; nothing goes through here
    np.testing.assert_array_equal(zarr.open(str(tmp_path / "vectors.zarr"), mode="r")[:], expected)

    vectors = sfbow_dask.encode_bag(db.from_sequence(sentences, npartitions=4), model_path)  # unknown lengths
    frame = dd.from_dask_array(vectors, columns=[f"v{i}" for i in range(expected.shape[1])])
    client.compute(frame.to_parquet(tmp_path / "vectors.parquet", compute=False)).result(timeout=WAIT_S)
    np.testing.assert_array_equal(pd.read_parquet(tmp_path / "vectors.parquet").to_numpy(), expected)


def test_the_model_is_loaded_once_per_worker_not_once_per_task(client, model_path, sentences):
    reference = sfbow_dask.prepare_model(model_path)
    _compute(client, sfbow_dask.encode_bag(db.from_sequence(sentences, npartitions=40), reference))
    caches = client.run(sfbow_dask.worker_cache_info)
    assert len(caches) == 2
    for cache in caches.values():
        assert cache["loads"] == {reference.sha256: 1}


def _slow_partition(partition: list[str]) -> list[str]:
    """A partition that takes a while to read, as from a slow store: keeps the job running long enough."""
    time.sleep(0.25)
    return partition


def test_a_worker_killed_mid_job_loses_no_row(client, model_path, sentences, expected):
    bag = db.from_sequence(sentences, npartitions=24).map_partitions(_slow_partition)
    vectors = client.persist(sfbow_dask.encode_bag(bag, model_path))
    blocks = distributed.futures_of(vectors)
    first = next(iter(distributed.as_completed(blocks, timeout=WAIT_S)))
    assert first.status == "finished"
    pids = client.run(os.getpid)
    busy = [worker for worker, keys in client.processing().items() if keys]
    victim = (busy or sorted(pids))[0]
    unfinished = sum(not block.done() for block in blocks)
    os.kill(pids[victim], signal.SIGKILL)
    assert unfinished > 0  # the job was in the middle when the worker died

    result = _compute(client, vectors)
    np.testing.assert_array_equal(result, expected)  # every row, in order
    deadline = time.monotonic() + WAIT_S  # the nanny restarts the dead worker: two live workers again
    while True:
        now = client.run(os.getpid, on_error="ignore")
        if len(now) == 2 and pids[victim] not in now.values():
            break
        assert time.monotonic() < deadline, f"no replacement worker after {WAIT_S} s: {now}"
        time.sleep(0.5)


def test_a_model_file_the_workers_cannot_load_is_refused_at_submission(client, model_path, sentences, tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    shutil.copy(model_path, corrupt)
    with open(corrupt, "r+b") as stream:  # flip bytes in the middle of the vectors
        stream.seek(corrupt.stat().st_size // 2)
        stream.write(b"\x00\x11\x22\x33\x44\x55\x66\x77")
    bag = db.from_sequence(sentences, npartitions=4)
    started = time.monotonic()
    with pytest.raises(sfbow_dask.ModelUnavailableError, match=r"cannot be used on 2 of 2 Dask workers") as error:
        sfbow_dask.encode_bag(bag, corrupt)
    assert time.monotonic() - started < WAIT_S
    assert str(corrupt) in str(error.value)
    for worker in client.scheduler_info(n_workers=-1)["workers"]:
        assert worker in str(error.value)


@pytest.mark.skipif(not hasattr(os, "seteuid") or os.geteuid() != 0,
                    reason="needs root to run one worker as another user")
def test_a_model_file_one_worker_cannot_read_names_that_worker(client, glove_model, sentences, tmp_path):
    private = tmp_path / "private.npz"
    SFBoW((glove_model.vectors.words[:1000], glove_model.vectors.matrix[:1000])).save(private)  # a new checksum
    os.chmod(private, 0o600)
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    client.run(os.seteuid, 65534, workers=[workers[0]])  # that worker now runs as 'nobody'
    try:
        with pytest.raises(sfbow_dask.ModelUnavailableError, match=r"on 1 of 2 Dask workers") as error:
            sfbow_dask.encode_array(da.from_array(np.array(sentences, dtype=object), chunks=500), private)
    finally:
        client.run(os.seteuid, 0, workers=[workers[0]])
    assert workers[0] in str(error.value) and workers[1] not in str(error.value)
    assert "PermissionError" in str(error.value)


def test_tasks_run_on_a_local_scheduler_too_and_bad_input_is_refused(model_path, glove_model, sentences, expected):
    local = sfbow_dask.ModelFile(str(model_path), sfbow_dask.file_sha256(model_path), glove_model.dim)
    vectors = sfbow_dask.encode_bag(db.from_sequence(sentences[:300], npartitions=3), local)
    np.testing.assert_array_equal(vectors.compute(scheduler="sync"), expected[:300])

    with pytest.raises(TypeError, match="dask.bag.Bag"):
        sfbow_dask.encode_bag(sentences, local)
    with pytest.raises(TypeError, match="1-D"):
        sfbow_dask.encode_array(da.zeros((2, 2)), local)
    frame = dd.from_pandas(pd.DataFrame({"text": ["a cat", None, "a dog"]}), npartitions=1)
    with pytest.raises(KeyError, match="'text'"):
        sfbow_dask.encode_frame(frame, local, column="body")
    with pytest.raises(ValueError, match=r"missing value at index 1"):
        sfbow_dask.encode_frame(frame, local, column="text").compute(scheduler="sync")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        sfbow_dask.encode_bag(db.from_sequence(["x"]), model_path.parent / "absent.npz")
    with pytest.raises(ValueError, match="n_threads"):
        sfbow_dask.encode_bag(db.from_sequence(["x"]), local, n_threads=0)


WORDS = ["the", "cat", "sat", "on", "a", "mat", ".", ",", "zzqxunknown", "Guitar", "playing", "!", "", " "]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join), max_size=40),
       partitions=st.integers(1, 6))
def test_any_partitioning_gives_one_row_per_input_in_order(model_path, glove_model, texts, partitions):
    bag = db.from_sequence(texts, npartitions=partitions) if texts else db.from_sequence([], npartitions=1)
    result = sfbow_dask.encode_bag(bag, model_path, client=False).compute(scheduler="sync")
    np.testing.assert_array_equal(result.reshape(-1, glove_model.dim), glove_model.encode(texts, n_threads=1))


def test_a_file_swapped_between_hash_and_load_is_not_cached_under_the_old_hash(glove_model, sentences, tmp_path,
                                                                                monkeypatch):
    from collections import OrderedDict

    path, other = tmp_path / "model.npz", tmp_path / "other.npz"
    glove_model.save(path)
    vectors = default_vectors()
    SFBoW((vectors.words[N_WORDS:2 * N_WORDS], vectors.matrix[N_WORDS:2 * N_WORDS])).save(other)
    sha256 = sfbow_dask.file_sha256(path)
    monkeypatch.setattr(sfbow_dask, "_CACHE", OrderedDict())
    digest = sfbow_dask._digest

    def hash_then_swap(data):  # the hostile moment: right after the bytes are hashed, the file changes
        found = digest(data)
        shutil.copyfile(other, path)
        return found

    monkeypatch.setattr(sfbow_dask, "_digest", hash_then_swap)
    model = sfbow_dask.cached_model(str(path), sha256)
    np.testing.assert_array_equal(model.encode(sentences[:200], n_threads=1),
                                  glove_model.encode(sentences[:200], n_threads=1))
    assert sfbow_dask.worker_cache_info()["models"] == [sha256]
    monkeypatch.setattr(sfbow_dask, "_digest", digest)
    monkeypatch.setattr(sfbow_dask, "_CACHE", OrderedDict())
    with pytest.raises(sfbow_dask.ModelUnavailableError, match="not the .* of the client's file"):
        sfbow_dask.cached_model(str(path), sha256)  # now the swapped file itself: refused, not cached
    assert sfbow_dask.worker_cache_info()["models"] == []


def test_the_embedded_default_model_needs_no_file(client, sentences):
    """As sfbow.encode: no model argument means the default model, built by each worker from the package."""
    import sfbow

    bag = db.from_sequence(sentences[:600], npartitions=3)
    vectors = _compute(client, sfbow_dask.encode_bag(bag))
    np.testing.assert_array_equal(vectors, sfbow.encode(sentences[:600], n_threads=1))
    reference = sfbow_dask.prepare_model()
    assert reference.path == sfbow_dask.DEFAULT_MODEL and reference.dim == vectors.shape[1]
    with pytest.raises(sfbow_dask.ModelUnavailableError, match="same sfbow version"):
        sfbow_dask.prepare_model(sfbow_dask.ModelFile(reference.path, "sfbow 0.0 default model", reference.dim),
                                 client=False)


def test_a_pretrained_name_is_sent_as_its_cache_file(model_path, sentences, expected, tmp_path, monkeypatch):
    """model="minilm" resolves to the cached file of that model (a stand-in here, so nothing is distilled)."""
    monkeypatch.setenv("SFBOW_CACHE", str(tmp_path))
    shutil.copy(model_path, tmp_path / "minilm-v1.sfbow.npz")
    reference = sfbow_dask.prepare_model("minilm", client=False)
    assert reference.path == str(tmp_path / "minilm-v1.sfbow.npz")
    strings = da.from_array(np.array(sentences, dtype=object), chunks=1000)
    vectors = sfbow_dask.encode_array(strings, "minilm", client=False).compute(scheduler="sync")
    np.testing.assert_array_equal(vectors, expected)

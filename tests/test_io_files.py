"""The model file layer, numlstm.io: atomic writes, size caps on load, and ValueError for bad files.

These tests call :func:`numlstm.io.write_model` and :func:`numlstm.io.read_model`
directly, with small payloads and no estimator, except where ``load`` itself is
under test.
"""

import errno
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
from numpy.lib import format as npy_format

import numlstm
from numlstm import io as model_io

POSIX_ONLY = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals, FIFOs and umask")


def small_arrays():
    return {
        "net/weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "labels": np.array(["yes", "no"], dtype=object),
        "flags": np.array([True, False]),
        "empty": np.zeros((0, 3)),
        "scalar": np.int64(7),
    }


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.npz"
    model_io.write_model(path, {"estimator": "LSTMRegressor", "loss": float("nan")}, small_arrays())
    return path


def npz_bytes(arrays):
    """An ``.npz`` archive as :func:`numpy.savez` writes it, whatever ``arrays`` hold."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def members_of(path):
    """The arrays of a model file and its metadata, read without numlstm."""
    with np.load(path) as archive:
        arrays = dict(archive)
    return json.loads(str(arrays.pop("__metadata__"))), arrays


def with_metadata(metadata, arrays):
    """``.npz`` bytes of ``arrays`` plus ``metadata`` (a dict, or JSON text) as the metadata entry."""
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    return npz_bytes({**arrays, "__metadata__": np.array(text)})


def npy_header(dtype, shape):
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def zip_bytes(members):
    """A zip of ``members``, (name, data as stored, compress type, uncompressed size claimed), sizes unchecked."""
    out, central = io.BytesIO(), b""
    for name, data, method, size in members:
        raw_name, crc, offset = name.encode(), zlib.crc32(data), out.tell()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 33, crc, len(data), size, len(raw_name), 0))
        out.write(raw_name + data)
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 33, crc, len(data), size, len(raw_name),
            0, 0, 0, 0, 0, offset,
        ) + raw_name
    start = out.tell()
    out.write(central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), start, 0))
    return out.getvalue()


def stored_members(path):
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info), zipfile.ZIP_STORED, info.file_size) for info in archive.infolist()]


def assert_refused_cheaply(path, match=None, **kwargs):
    """read_model raises ValueError within a second, allocating under 32 MB on the way."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=match):
            model_io.read_model(path, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1.0
    assert peak < 32 * 1024**2, f"read_model allocated {peak} bytes before refusing {path}"


# ---- round trip ----------------------------------------------------------------------------


def test_round_trip_keeps_metadata_dtypes_shapes_and_layout(model):
    metadata, arrays = model_io.read_model(model)
    assert metadata["format"] == model_io.FORMAT_NAME and metadata["format_version"] == model_io.FORMAT_VERSION == 2
    assert metadata["estimator"] == "LSTMRegressor" and np.isnan(metadata["loss"]) and "manifest" not in metadata
    expected = small_arrays()
    assert arrays.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(arrays[name], value.astype(str) if value.dtype == object else value)
        assert arrays[name].flags.writeable
    assert arrays["net/weight"].dtype == np.float32 and arrays["labels"].dtype.kind == "U"
    assert arrays["fortran"].flags.f_contiguous


def test_version_1_files_still_load(tmp_path):
    """Files of numlstm's first format (no manifest) load, with the same checks on their members."""
    path = tmp_path / "v1.npz"
    v1 = {"format": model_io.FORMAT_NAME, "format_version": 1, "estimator": "LSTMRegressor"}
    path.write_bytes(with_metadata(v1, {"w": np.ones((2, 3), np.float32)}))
    metadata, arrays = model_io.read_model(path)
    assert metadata == v1 and arrays["w"].shape == (2, 3)
    path.write_bytes(with_metadata(v1, {"w": np.ones(2), "evil": np.array([print], dtype=object)}))
    with pytest.raises(ValueError, match="evil"):
        model_io.read_model(path)


def test_write_model_rejects_what_it_could_not_read_back(tmp_path):
    path = tmp_path / "model.npz"
    with pytest.raises(ValueError, match="format_version"):
        model_io.write_model(path, {"format_version": 3}, {})
    with pytest.raises(ValueError, match="'bad'"):
        model_io.write_model(path, {}, {"bad": np.array([object()])})
    with pytest.raises(ValueError, match="'when'"):
        model_io.write_model(path, {}, {"when": np.array(["2020-01-01"], dtype="datetime64[D]")})
    with pytest.raises(TypeError, match="arrays"):
        model_io.write_model(path, {}, {1: np.ones(1)})
    with pytest.raises(TypeError, match="metadata"):
        model_io.write_model(path, [("a", 1)], {})
    assert os.listdir(tmp_path) == []


# ---- A: atomic writes ----------------------------------------------------------------------

_KILLED_WRITER = """
import sys
import numpy as np
from numlstm.io import write_model
target, size = sys.argv[1], int(sys.argv[2])
arrays = {"a": np.empty(size, np.float32), "b": np.empty(size, np.float32)}
print("ready", flush=True)
tag = 0
while True:
    tag += 1
    for values in arrays.values():
        values.fill(tag)
    write_model(target, {"tag": tag}, arrays)
"""


def check_tagged(path):
    """The tag of the model at ``path``, after checking that every array holds that tag."""
    metadata, arrays = model_io.read_model(path)
    assert all(np.all(values == metadata["tag"]) for values in arrays.values())
    return metadata["tag"]


@POSIX_ONLY
def test_sigkill_during_save_leaves_old_or_new_model(tmp_path):
    """Finding 3: SIGKILL a process at random instants while it saves 32 MB models over the same path.

    The target must always load and hold one whole model. A killed writer may
    leave its hidden temporary file, and nothing else.
    """
    trials, size = 20, 4 * 1024**2  # two float32 arrays of 16 MB each
    target = tmp_path / "model.npz"
    start = time.perf_counter()
    model_io.write_model(target, {"tag": 0}, {name: np.zeros(size, np.float32) for name in "ab"})
    write_seconds = time.perf_counter() - start
    rng = np.random.default_rng(0)
    tags = []
    for _ in range(trials):
        writer = subprocess.Popen(
            [sys.executable, "-c", _KILLED_WRITER, str(target), str(size)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert writer.stdout.readline() == "ready\n"
            time.sleep(rng.uniform(0, 3 * write_seconds))
            assert writer.poll() is None, "the writer stopped before it was killed"
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            writer.stdout.close()
        assert writer.returncode == -signal.SIGKILL
        tags.append(check_tagged(target))
    leftovers = sorted(set(os.listdir(tmp_path)) - {"model.npz"})
    assert len(leftovers) <= trials
    assert all(re.fullmatch(r"\.model\.npz\.[0-9a-f]{16}\.tmp", name) for name in leftovers), leftovers
    for name in leftovers:  # up to 32 MB each; pytest keeps its last temporary directories
        os.unlink(tmp_path / name)
    assert tags[-1] > 0, "no save ever completed: the kills did not exercise a replace"


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_failed_save_keeps_old_model_and_leaves_no_temp_file(model, monkeypatch, error):
    """Finding 3: a full disk or Ctrl-C half-way through writing the arrays changes nothing on disk."""
    before = model.read_bytes()
    write_array, calls = npy_format.write_array, []

    def fail_on_second_array(fp, array, *args, **kwargs):
        calls.append(array.shape)
        if len(calls) == 2:
            fp.write(b"\0" * 100)
            raise error
        write_array(fp, array, *args, **kwargs)

    monkeypatch.setattr(npy_format, "write_array", fail_on_second_array)
    with pytest.raises(type(error)):
        model_io.write_model(model, {"tag": "new"}, {"a": np.ones(1000), "b": np.ones(1000)})
    assert len(calls) == 2
    assert model.read_bytes() == before
    assert os.listdir(model.parent) == ["model.npz"]


@POSIX_ONLY
def test_save_writes_only_the_target_with_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / "model.npz"
    model_io.write_model(path, {}, {"w": np.ones(3)})
    assert os.listdir(tmp_path) == ["model.npz"]
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    os.chmod(path, 0o640)
    model_io.write_model(path, {}, {"w": np.zeros(3)})
    assert os.stat(path).st_mode & 0o777 == 0o640
    link = tmp_path / "link.npz"
    link.symlink_to(path)
    model_io.write_model(link, {}, {"w": np.full(3, 2.0)})
    assert link.is_symlink() and model_io.read_model(path)[1]["w"][0] == 2.0
    assert sorted(os.listdir(tmp_path)) == ["link.npz", "model.npz"]


def test_save_refuses_a_directory_or_a_missing_directory_before_writing(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError):
        model_io.write_model(tmp_path / "folder", {}, {"w": np.ones(3)})
    with pytest.raises(FileNotFoundError):
        model_io.write_model(tmp_path / "missing" / "model.npz", {}, {"w": np.ones(3)})
    assert os.listdir(tmp_path) == ["folder"] and os.listdir(tmp_path / "folder") == []


@POSIX_ONLY
def test_save_refuses_a_read_only_target(model):
    if os.geteuid() == 0:
        pytest.skip("root may write anything")
    before = model.read_bytes()
    os.chmod(model, 0o444)
    with pytest.raises(PermissionError):
        model_io.write_model(model, {}, {"w": np.ones(3)})
    assert model.read_bytes() == before and os.listdir(model.parent) == ["model.npz"]


# ---- B: limits on load ---------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_unlisted_huge_deflated_member_is_refused_unread(model, tmp_path, version):
    """Finding 6: a 2 GiB member that deflates from 1 MiB (its zip entry claims the full size).

    Before the fix every member was read, so a 2 MB file cost 20 s and 2.2 GiB.
    """
    members = stored_members(model)
    if version == 1:
        meta, arrays = members_of(model)
        meta.pop("manifest")
        members = stored_members_of_bytes(with_metadata({**meta, "format_version": 1}, arrays), tmp_path)
    header = npy_header(np.float64, (2**28,))
    deflate = zlib.compressobj(wbits=-15)
    bomb = deflate.compress(header + bytes(2**20)) + deflate.flush()
    path = tmp_path / "bomb.npz"
    path.write_bytes(zip_bytes([*members, ("bomb.npy", bomb, zipfile.ZIP_DEFLATED, len(header) + 2**31)]))
    assert path.stat().st_size < 2 * 1024**2
    assert_refused_cheaply(path, match="bomb")


def stored_members_of_bytes(content, tmp_path):
    path = tmp_path / "members.npz"
    path.write_bytes(content)
    return stored_members(path)


@pytest.mark.parametrize("version", [1, 2])
def test_huge_declared_shape_is_refused_before_allocation(model, tmp_path, version):
    """A 3 GiB array declared by a small file, consistently in manifest, header and zip entry."""
    meta, arrays = members_of(model)
    if version == 1:
        meta.pop("manifest")
        meta["format_version"] = 1
    else:
        meta["manifest"]["huge"] = {"dtype": "<f8", "shape": [3 * 2**27]}
    header = npy_header(np.float64, (3 * 2**27,))
    members = stored_members_of_bytes(with_metadata(meta, arrays), tmp_path)
    path = tmp_path / "huge.npz"
    path.write_bytes(zip_bytes([*members, ("huge.npy", header, zipfile.ZIP_STORED, len(header) + 3 * 2**30)]))
    assert_refused_cheaply(path)
    assert_refused_cheaply(path, max_bytes=2**40)  # the sizes are also checked against the file's


def test_size_cap_applies_before_reading_and_can_be_set(model):
    total = sum(value.nbytes for value in model_io.read_model(model)[1].values())
    assert_refused_cheaply(model, match="cap", max_bytes=total - 1)
    assert model_io.read_model(model, max_bytes=total)[1].keys() == small_arrays().keys()
    with pytest.raises(ValueError, match="cap"):
        numlstm.load(model, max_bytes=total - 1)
    with pytest.raises(TypeError, match="max_bytes"):
        model_io.read_model(model, max_bytes=1.5e9)


def test_duplicate_member_names_are_refused(model, tmp_path):
    members = stored_members(model)
    weight = next(member for member in members if member[0] == "net/weight.npy")
    path = tmp_path / "duplicate.npz"
    path.write_bytes(zip_bytes([*members, weight]))
    with pytest.raises(ValueError, match="duplicate"):
        model_io.read_model(path)


def edit_manifest(manifest):
    yield "wrong shape", {**manifest, "net/weight": {"dtype": "<f4", "shape": [4, 3]}}
    yield "wrong dtype", {**manifest, "net/weight": {"dtype": "<f8", "shape": [3, 4]}}
    yield "entry not an object", {**manifest, "net/weight": [3, 4]}
    yield "missing entry", {k: v for k, v in manifest.items() if k != "net/weight"}
    yield "extra entry", {**manifest, "ghost": {"dtype": "<f4", "shape": [1]}}
    yield "not an object", list(manifest)
    yield "absent", None


def test_manifest_must_agree_with_the_members(model, tmp_path):
    meta, arrays = members_of(model)
    path = tmp_path / "bad.npz"
    for case, manifest in edit_manifest(meta["manifest"]):
        path.write_bytes(with_metadata({**meta, "manifest": manifest}, arrays))
        with pytest.raises(ValueError, match="manifest"):
            model_io.read_model(path)
            pytest.fail(case)
    path.write_bytes(with_metadata(meta, {**arrays, "net/weight": arrays["net/weight"][:2]}))
    with pytest.raises(ValueError, match="manifest"):
        model_io.read_model(path)


def test_members_outside_the_manifest_are_refused(model, tmp_path):
    meta, arrays = members_of(model)
    path = tmp_path / "bad.npz"
    path.write_bytes(with_metadata(meta, {**arrays, "evil": np.ones(3)}))
    with pytest.raises(ValueError, match="evil"):
        model_io.read_model(path)
    path.write_bytes(zip_bytes([*stored_members(model), ("notes.txt", b"hello", zipfile.ZIP_STORED, 5)]))
    with pytest.raises(ValueError, match="notes.txt"):
        model_io.read_model(path)


# ---- C: every bad file is a ValueError -----------------------------------------------------


@POSIX_ONLY
def test_fifo_is_refused_without_blocking(tmp_path):
    """Finding 11: reading a FIFO used to wait forever for a writer."""
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    raised = []

    def read():
        try:
            model_io.read_model(fifo)
        except BaseException as exc:  # handed to the test thread
            raised.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():
        with open(fifo, "wb"):  # lets the blocked reader go
            pass
        reader.join(5)
        pytest.fail("read_model blocked on a FIFO")
    assert len(raised) == 1 and isinstance(raised[0], ValueError) and "regular file" in str(raised[0])
    with pytest.raises(ValueError, match="regular file"):
        model_io.read_model(tmp_path)


def crafted_metadata(meta):
    yield "deep nesting", "[" * 100_000
    yield "deep object nesting", '{"a":' * 100_000
    yield "array", "[1, 2]"
    yield "string", '"numlstm-model"'
    yield "null", "null"
    yield "not json", json.dumps(meta)[:-3]
    yield "huge integer", '{"format": "numlstm-model", "format_version": ' + "9" * 5000 + "}"
    for version in (True, 2.0, "2", 0, 3, None, [2]):
        yield f"format_version {version!r}", {**meta, "format_version": version}
    for name in (None, "numlstm-model ", ["numlstm-model"], {"name": "numlstm-model"}):
        yield f"format {name!r}", {**meta, "format": name}
    yield "too large", json.dumps(meta) + " " * (model_io.MAX_METADATA_BYTES // 4)


def test_crafted_metadata_raises_value_error(model, tmp_path):
    meta, arrays = members_of(model)
    path = tmp_path / "bad.npz"
    for case, metadata in crafted_metadata(meta):
        path.write_bytes(with_metadata(metadata, arrays))
        try:
            model_io.read_model(path)
        except ValueError as exc:
            assert str(path) in str(exc), case
            continue
        pytest.fail(f"{case}: read without a ValueError")
    for case, entry in [("number", np.float64(1.0)), ("text vector", np.array([json.dumps(meta)]))]:
        path.write_bytes(npz_bytes({**arrays, "__metadata__": entry}))
        with pytest.raises(ValueError, match="metadata"):
            model_io.read_model(path)
            pytest.fail(case)


def damaged_copies(content):
    for end in range(0, len(content), max(1, len(content) // 25)):
        yield f"truncated at {end}", content[:end]
    for at in range(0, len(content), max(1, len(content) // 40)):
        flipped = bytearray(content)
        flipped[at] ^= 0xFF
        yield f"flipped byte {at}", bytes(flipped)
    rng = np.random.default_rng(0)
    yield "random bytes", rng.bytes(1000)
    yield "zip magic then random bytes", b"PK\x03\x04" + rng.bytes(1000)
    plain = io.BytesIO()
    np.save(plain, np.ones(2))
    yield "plain .npy", plain.getvalue()


def test_damaged_files_raise_value_error(model, tmp_path):
    content = model.read_bytes()
    path = tmp_path / "bad.npz"
    cases = list(damaged_copies(content))
    for case, damaged in cases:
        path.write_bytes(damaged)
        try:
            model_io.read_model(path)
        except ValueError:
            continue
        if not case.startswith("flipped"):  # a flipped byte in, say, a weight's value is undetectable
            pytest.fail(f"{case}: read without a ValueError")
    with pytest.raises(FileNotFoundError):
        model_io.read_model(tmp_path / "missing.npz")


@pytest.mark.parametrize("error", [RecursionError, MemoryError, OverflowError, TypeError, KeyError])
def test_load_turns_errors_of_the_estimator_rebuild_into_value_error(model, monkeypatch, error):
    def fail(cls, metadata, arrays):
        raise error("crafted")

    monkeypatch.setattr(model_io, "estimator_from_payload", fail)
    with pytest.raises(ValueError, match=error.__name__):
        numlstm.load(model)


def test_load_rejects_an_estimator_name_that_is_not_a_string(tmp_path):
    path = tmp_path / "model.npz"
    for name in (["LSTMRegressor"], {"LSTMRegressor": 1}, None, "os.system"):
        model_io.write_model(path, {"estimator": name}, {})
        with pytest.raises(ValueError, match="unknown estimator"):
            numlstm.load(path)

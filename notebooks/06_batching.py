# ---
# jupyter:
#   jupytext:
#     formats: source/06_batching//ipynb,notebooks//py:percent
#     notebook_metadata_filter: -jupytext.text_representation
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Data: reading MNIST, shuffling, mini-batches
#
# The network, its loss, its gradients and its optimizers are written. What is missing is
# the food: 60,000 training images, delivered a few at a time, in a fresh random order
# every pass. In PyTorch that is the job of `torch.utils.data.DataLoader`. In this lesson
# you do it with your own hands, from the raw bytes on disk to the batches the training
# loop of lesson 07 will eat:
#
# ```
#  file.gz ──gunzip──▶ bytes ──read_idx──▶ uint8 [N, 28, 28] ──normalize──▶ float32 [N, 784]
#                                                                  │
#                                      get_batches(X, y, 64, generator=g)
#                                                                  ▼
#                                       (x [64, 784], y [64]), (x [64, 784], y [64]), ...
# ```
#
# and at the end you will find out why `DataLoader` and your own shuffle disagree even when
# you hand them the same seed.
#
# **You will write:** `read_idx`, `normalize`, `num_batches`, `get_batches`.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import gzip
import inspect
import math
import struct
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from grader import checks, data, reference, tripwire
from grader.widgets import batching as demo
from grader.widgets.quiz import Question, quiz

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## The IDX format, one byte at a time
#
# MNIST ships as four files in a format called **IDX**, from the days when a data set was
# a C array written to disk. There is no compression inside the format and no metadata
# beyond the shape: a short header, then every value, one after the other. The copies in
# `data/mnist/` are gzip-compressed on top (`.gz`), so the bytes must be unpacked first;
# Python's `gzip` module does that.
#
# | file | holds |
# |---|---|
# | `train-images-idx3-ubyte.gz` | 60,000 training images, 28×28 |
# | `train-labels-idx1-ubyte.gz` | their 60,000 labels |
# | `t10k-images-idx3-ubyte.gz` | 10,000 test images |
# | `t10k-labels-idx1-ubyte.gz` | their labels |
#
# Here are the first 16 bytes of the training images, after decompression:

# %%
images_path = data.file_path("train-images-idx3-ubyte")
with gzip.open(images_path, "rb") as f:
    head = f.read(16)
print(images_path.name)
print(head.hex(" "))

# %% [markdown]
# Read them in groups:
#
# * **bytes 0-1** are always `00 00`. Together with the next two they form the *magic
#   number*, the format's signature: a file that does not start this way is not IDX.
# * **byte 2** says what type every value has. `0x08` means *unsigned byte* (0 to 255),
#   which is what MNIST uses for both pixels and labels. Other codes exist (`0x09` signed
#   byte, `0x0B` 16-bit integer, `0x0C` 32-bit integer, `0x0D` float, `0x0E` double), but
#   this lesson only reads `0x08`.
# * **byte 3** is the number of dimensions: 3 for a stack of images, 1 for a list of labels.
# * then **one 4-byte unsigned integer per dimension**, the size of that dimension.
# * then the data itself, `prod(sizes)` values, the last dimension changing fastest (row
#   after row of each image, image after image).
#
# Decoding the header above:

# %%
print(f"bytes 0-1  {head[0:2].hex(' ')}        zero")
print(f"byte  2    {head[2]:02x}           type code 0x{head[2]:02x} = unsigned byte")
print(f"byte  3    {head[3]:02x}           {head[3]} dimensions")
sizes = []
for d in range(head[3]):
    chunk = head[4 + 4 * d: 8 + 4 * d]
    sizes.append(int.from_bytes(chunk, "big"))
    print(f"bytes {4 + 4 * d:2d}-{7 + 4 * d:2d} {chunk.hex(' ')}  size of dimension {d}: {sizes[-1]}")
payload = math.prod(sizes)
print(f"so {payload:,} data bytes follow, and the file holds 16 + {payload:,} = {16 + payload:,} bytes")

# %% [markdown]
# `ea 60` is 0xEA60 = 14 × 4096 + 10 × 256 + 6 × 16 = 60,000, and `1c` is 28.
#
# ### Big-endian: the most significant byte first
#
# A 4-byte integer can be stored with its most significant byte first (*big-endian*, the
# order we write numbers on paper) or last (*little-endian*, the order of x86 and ARM
# processors in memory). IDX is big-endian. Read the same four bytes the other way round
# and the sizes become absurd:

# %%
chunk = head[4:8]
print("big-endian   :", int.from_bytes(chunk, "big"))
print("little-endian:", int.from_bytes(chunk, "little"))
print("struct '>I'  :", struct.unpack(">I", chunk)[0], " ('>' = big-endian, 'I' = unsigned 4-byte int)")

# %% [markdown]
# A label file has the same layout with one dimension:

# %%
with gzip.open(data.file_path("train-labels-idx1-ubyte"), "rb") as f:
    label_head = f.read(12)
print(label_head[:8].hex(" "), " -> type", hex(label_head[2]), "|", label_head[3], "dimension |",
      int.from_bytes(label_head[4:8], "big"), "labels")
print("the first four labels:", list(label_head[8:12]))

# %% [markdown]
# Writing an IDX file is the same recipe backwards. `make_idx` below builds the bytes of
# one, so that you can make small test files (and broken ones) of any shape:

# %% nbgrader={"grade": false, "grade_id": "make_idx", "locked": true, "schema_version": 3, "solution": false, "task": false} tags=["helpers"]
def make_idx(values, type_code=0x08):
    """The bytes of an IDX file holding the uint8 tensor ``values`` (any number of dimensions)."""
    header = bytes([0, 0, type_code, values.dim()])
    header += b"".join(size.to_bytes(4, "big") for size in values.shape)
    return header + bytes(values.flatten().tolist())


# %%
tiny = torch.arange(6, dtype=torch.uint8).reshape(2, 3)
print(make_idx(tiny).hex(" "))

# %% [markdown]
# ## Exercise 1: `read_idx`
#
# Parse an IDX file into a `uint8` tensor of the shape its header announces, reading the
# header yourself (the bytes, `int.from_bytes` or `struct`; `torch.frombuffer` turns the
# payload into a tensor without a Python loop over 47 million bytes).
#
# A file on disk can be damaged: cut short by a broken download, or not an IDX file at
# all. Silently returning wrong pixels would be the worst outcome, so check everything
# the header promises and raise a `ValueError` whose message says what was expected and
# what was found:
#
# * the file is at least 4 bytes long and starts with `00 00`;
# * the type code is `0x08`;
# * the file is long enough for its `4 × ndim` bytes of sizes;
# * after the header there are **exactly** `prod(sizes)` bytes, no fewer (truncated) and
#   no more.
#
# A path ending in `.gz` is decompressed with `gzip` first; any other path is read as it is.

# %% nbgrader={"grade": false, "grade_id": "read_idx", "locked": false, "schema_version": 3, "solution": true, "task": false}
def read_idx(path):
    """Read an IDX file of unsigned bytes into a tensor.

    Args:
        path (str or pathlib.Path): the file; if its name ends in ``.gz`` it is
            gzip-decompressed first, otherwise its bytes are used as they are.

    Returns:
        torch.Tensor: dtype ``torch.uint8``, of the shape given by the header's sizes
        (for example ``[60000, 28, 28]`` for the training images, ``[60000]`` for the
        labels), holding the data bytes in file order.

    Raises:
        ValueError: with a message saying what was expected, if the file is shorter than
            4 bytes, does not start with two zero bytes, has a type code other than 0x08,
            is too short to hold its 4-byte big-endian sizes, or if the number of data
            bytes after the header differs from the product of the sizes.
    """
    ### BEGIN SOLUTION
    path = Path(path)
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path.name}: not a valid gzip file ({err})") from err
    if len(raw) < 4:
        raise ValueError(f"{path.name}: {len(raw)} bytes, too short for an IDX header (at least 4 bytes expected)")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path.name}: bad magic number, expected the file to start with 00 00, "
                         f"found {raw[:2].hex(' ')}")
    if raw[2] != 0x08:
        raise ValueError(f"{path.name}: type code 0x{raw[2]:02x}, expected 0x08 (unsigned byte)")
    ndim = raw[3]
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise ValueError(f"{path.name}: header announces {ndim} dimensions, so {start} header bytes, "
                         f"but the file has only {len(raw)}")
    dims = [int.from_bytes(raw[4 + 4 * d: 8 + 4 * d], "big") for d in range(ndim)]
    count = math.prod(dims)
    if len(raw) - start != count:
        raise ValueError(f"{path.name}: header announces shape {dims}, so {count:,} data bytes, "
                         f"but {len(raw) - start:,} follow the header (truncated or padded file)")
    if count == 0:
        return torch.zeros(dims, dtype=torch.uint8)
    return torch.frombuffer(bytearray(raw[start:]), dtype=torch.uint8).reshape(dims)
    ### END SOLUTION


# %% [markdown]
# Try it on the label file, and on the small file built above:

# %%
y_train = read_idx(data.file_path("train-labels-idx1-ubyte"))
print(y_train.shape, y_train.dtype, "first labels:", y_train[:10].tolist())
with tempfile.TemporaryDirectory() as folder:
    (Path(folder) / "tiny.idx").write_bytes(make_idx(tiny))
    print(read_idx(Path(folder) / "tiny.idx"))

# %% nbgrader={"grade": true, "grade_id": "test_read_idx_labels", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The two label files: shape, dtype and the first label of each.
# When graded, also: every label of both files, the per-class counts, an uncompressed copy (path as Path and
#   as str), and grader.data's own IDX reader is off limits.
labels = read_idx(data.file_path("train-labels-idx1-ubyte"))
checks.assert_shape(labels, (60000,), "read_idx(train labels)",
                    hint="a label file has one dimension; a .gz path must be decompressed first")
checks.assert_dtype(labels, torch.uint8, "read_idx(train labels)", hint="IDX type 0x08 is unsigned bytes: torch.uint8")
assert labels[0].item() == 5, f"read_idx(train labels)[0] = {labels[0].item()}, expected 5: is the header skipped?"
test_labels = read_idx(str(data.file_path("t10k-labels-idx1-ubyte")))
checks.assert_shape(test_labels, (10000,), "read_idx(test labels, path given as a str)")
assert test_labels[0].item() == 7, f"read_idx(test labels)[0] = {test_labels[0].item()}, expected 7"
### BEGIN HIDDEN TESTS
import grader.data as _grader_data
_expected = {name: _grader_data.parse_idx(_grader_data.read_bytes(name), name)
             for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte")}
# grader.data's own IDX reader (or MNIST loader) must not do the work
with tripwire.forbid("idx", what="read_idx"):
    _got = {name: read_idx(_grader_data.file_path(name)) for name in _expected}
for _name, _want in _expected.items():
    checks.assert_equal(_got[_name], _want, f"read_idx({_name}.gz)",
                        hint="read the sizes as big-endian 4-byte integers and the data after the header")
_counts = torch.bincount(_got["train-labels-idx1-ubyte"].long(), minlength=10).tolist()
assert _counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949], \
    f"per-class counts of the training labels are {_counts}"
with tempfile.TemporaryDirectory() as _folder:        # an uncompressed copy is read as it is
    _raw = Path(_folder) / "train-labels-idx1-ubyte"
    _raw.write_bytes(gzip.decompress(_grader_data.file_path("train-labels-idx1-ubyte").read_bytes()))
    checks.assert_equal(read_idx(_raw), _expected["train-labels-idx1-ubyte"], "read_idx(uncompressed labels)",
                        hint="only a path ending in .gz is gzip-compressed; read any other file as it is")
    checks.assert_equal(read_idx(str(_raw)), _expected["train-labels-idx1-ubyte"],
                        "read_idx(uncompressed labels, path as str)")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_read_idx_images", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The training images: shape [60000, 28, 28], uint8, and the known first pixels.
# When graded, also: every pixel of both the training and the test image files.
images = read_idx(data.file_path("train-images-idx3-ubyte"))
checks.assert_shape(images, (60000, 28, 28), "read_idx(train images)",
                    hint="three sizes follow the 4-byte magic number, each a big-endian 4-byte integer")
checks.assert_dtype(images, torch.uint8, "read_idx(train images)")
assert images[0].max().item() == 255 and images[0, 0].sum().item() == 0, \
    "read_idx(train images)[0] does not look like the first digit (a 5): is the 16-byte header skipped?"
### BEGIN HIDDEN TESTS
import grader.data as _grader_data
for _name, _shape in [("train-images-idx3-ubyte", (60000, 28, 28)), ("t10k-images-idx3-ubyte", (10000, 28, 28))]:
    _want = _grader_data.parse_idx(_grader_data.read_bytes(_name), _name)
    _got = images if _name.startswith("train") else read_idx(_grader_data.file_path(_name))
    checks.assert_shape(_got, _shape, f"read_idx({_name}.gz)")
    checks.assert_equal(_got, _want, f"read_idx({_name}.gz)",
                        hint="the data starts right after the header: byte 4 + 4 * ndim")
    del _want, _got
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_read_idx_any_shape", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Small hand-made files of other shapes, raw and gzip-compressed.
# When graded, also: one to five dimensions, sizes that need more than one byte, size-1 dimensions and
#   random bytes, each file both raw and gzip-compressed.
with tempfile.TemporaryDirectory() as folder:
    cube = torch.arange(24, dtype=torch.uint8).reshape(2, 3, 4)
    (Path(folder) / "cube.idx").write_bytes(make_idx(cube))
    checks.assert_equal(read_idx(Path(folder) / "cube.idx"), cube, "read_idx(a [2, 3, 4] file)",
                        hint="use the number of dimensions in byte 3, not a fixed 28 x 28")
### BEGIN HIDDEN TESTS
def _idx_file(values):
    head = bytes([0, 0, 8, values.dim()]) + b"".join(struct.pack(">I", s) for s in values.shape)
    return head + values.flatten().numpy().tobytes()


_g = torch.Generator().manual_seed(6)
with tempfile.TemporaryDirectory() as _folder:
    for _i, _shape in enumerate([(2, 3, 300), (300,), (1, 1, 1, 1), (5, 257), (2, 1, 3, 2, 2), (1,)]):
        _values = torch.randint(0, 256, _shape, generator=_g, dtype=torch.uint8)
        for _gz in (False, True):
            _path = Path(_folder) / (f"case{_i}.idx" + (".gz" if _gz else ""))
            _bytes = _idx_file(_values)
            _path.write_bytes(gzip.compress(_bytes) if _gz else _bytes)
            checks.assert_equal(read_idx(_path), _values, f"read_idx(a {list(_shape)} file{' .gz' if _gz else ''})",
                                hint="sizes are big-endian (most significant byte first): int.from_bytes(b, 'big'); "
                                     "a size above 255 uses more than one byte")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_read_idx_corrupt", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Damaged files must raise ValueError with a message, never return a tensor.
# When graded, also: empty and too-short files, other bad magic bytes, wrong type codes, headers cut short,
#   truncated or missing data and trailing bytes, each both raw and gzip-compressed.
def expect_value_error(path, what):
    try:
        result = read_idx(path)
    except ValueError as err:
        assert str(err).strip(), f"read_idx({what}) raised ValueError without a message: say what was expected"
        return
    except Exception as err:                      # noqa: BLE001 - reported to the student
        raise AssertionError(f"read_idx({what}) raised {type(err).__name__}: {err}; check the header yourself "
                             f"and raise ValueError with a message saying what was expected") from None
    raise AssertionError(f"read_idx({what}) returned a tensor of shape {list(result.shape)} instead of raising "
                         f"ValueError")


with tempfile.TemporaryDirectory() as folder:
    bad = bytearray(make_idx(torch.zeros(2, 3, dtype=torch.uint8)))
    bad[0] = 0x12
    (Path(folder) / "bad_magic.idx").write_bytes(bytes(bad))
    expect_value_error(Path(folder) / "bad_magic.idx", "a file starting with 12 00")
### BEGIN HIDDEN TESTS
def _expect_error(path, what):
    try:
        _result = read_idx(path)
    except ValueError as err:
        assert str(err).strip(), f"read_idx({what}) raised ValueError without a message"
        return
    except Exception as err:                      # noqa: BLE001
        raise AssertionError(f"read_idx({what}) raised {type(err).__name__}, expected ValueError with a message "
                             f"saying what was expected") from None
    raise AssertionError(f"read_idx({what}) returned a tensor instead of raising ValueError")


def _header(type_code, dims):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", s) for s in dims)


_cases = {
    "an empty file": b"",
    "a 3-byte file": b"\x00\x00\x08",
    "a file starting with 01 00": b"\x01\x00" + _header(8, [4])[2:] + bytes(4),
    "a file starting with 00 07": b"\x00\x07" + _header(8, [4])[2:] + bytes(4),
    "type code 0x0D (float)": _header(0x0D, [2, 2]) + bytes(16),
    "type code 0x09 (signed byte)": _header(0x09, [4]) + bytes(4),
    "type code 0x0C (int32) with a consistent size": _header(0x0C, [6]) + bytes(6),
    "a truncated payload (header [3, 4], 10 data bytes)": _header(8, [3, 4]) + bytes(10),
    "a header claiming more items (header [1000], 999 bytes)": _header(8, [1000]) + bytes(999),
    "a header cut short (3 dims announced, 1 given)": _header(8, [5])[:3] + bytes([3]) + struct.pack(">I", 5),
    "trailing bytes after the data (header [4], 6 bytes)": _header(8, [4]) + bytes(6),
    "the MNIST header with no data": _header(8, [60000, 28, 28]),
}
with tempfile.TemporaryDirectory() as _folder:
    for _i, (_what, _bytes) in enumerate(_cases.items()):
        _raw = Path(_folder) / f"bad{_i}.idx"
        _raw.write_bytes(_bytes)
        _expect_error(_raw, _what)
        _gz = Path(_folder) / f"bad{_i}.idx.gz"
        _gz.write_bytes(gzip.compress(_bytes))
        _expect_error(_gz, _what + ", gzip-compressed")
### END HIDDEN TESTS

# %% [markdown]
# ## A look at the data
#
# The first twenty training images, with their labels, and how many of each digit the
# training set holds. The classes are close to balanced (from about 5,400 fives to about
# 6,700 ones), and in the file they come in no particular order.

# %%
train_images = read_idx(data.file_path("train-images-idx3-ubyte"))
train_labels = read_idx(data.file_path("train-labels-idx1-ubyte"))
fig, axes = plt.subplots(2, 10, figsize=(9, 2.2))
for ax, image, label in zip(axes.flat, train_images[:20], train_labels[:20]):
    ax.imshow(image, cmap="gray_r")
    ax.set_title(int(label), fontsize=9)
    ax.axis("off")
fig.tight_layout()
plt.show()
counts = torch.bincount(train_labels.long(), minlength=10)
fig, ax = plt.subplots(figsize=(6, 2.4))
ax.bar(range(10), counts.tolist(), color=demo.PALETTE)
ax.set_xticks(range(10))
ax.set_xlabel("digit")
ax.set_ylabel("training images")
fig.tight_layout()
plt.show()
print("per class:", counts.tolist())

# %% [markdown]
# ## From bytes to network inputs: `normalize`
#
# The network of lesson 02 wants `float32 [B, 784]`. The file gives `uint8 [N, 28, 28]`.
# Two changes are needed, and both have a reason.
#
# **Flatten** each 28×28 image into 784 numbers, row after row: `W1` is `[784, 128]`, one
# row of weights per pixel.
#
# **Convert to float and scale to [0, 1]** by dividing by 255. Integer bytes are a poor
# type to compute with: they wrap around silently, and a matrix product with float
# weights refuses them outright.

# %%
a = torch.tensor([200, 100], dtype=torch.uint8)
print("200 + 100 in uint8:", (a[0] + a[1]).item(), "  (300 - 256: it wrapped around)")
try:
    torch.zeros(1, 784, dtype=torch.uint8) @ torch.zeros(784, 128)
except RuntimeError as err:
    print("uint8 @ float32:", str(err).splitlines()[0])

# %% [markdown]
# Why divide by 255 rather than feed floats from 0 to 255? The Kaiming initialisation of
# lesson 01 chose `W1`'s scale assuming inputs of order one. A digit lights up about 150
# of its 784 pixels (the rest are exactly 0); with values near 255, every hidden unit
# would start 255 times larger than intended, the logits would be enormous, the softmax
# saturated, and the first gradient steps wild. In [0, 1] a dark pixel is 0, a full stroke is 1, and the scale the
# initialisation assumed holds.
#
# (Many tutorials go one step further and subtract the data set's mean pixel, about
# 0.1307, and divide by its standard deviation, about 0.3081. For this network [0, 1] is
# enough, and it is what the rest of the course uses.)
#
# ## Exercise 2: `normalize`
#
# Flatten and scale, returning a **new** tensor (the input images stay `uint8` and
# untouched: other code may still be using them).

# %% nbgrader={"grade": false, "grade_id": "normalize", "locked": false, "schema_version": 3, "solution": true, "task": false}
def normalize(images):
    """Turn uint8 images into network inputs.

    Args:
        images: uint8 tensor ``[N, 28, 28]`` (any ``[N, ...]`` works: everything after the
            first dimension is flattened, row after row). Not modified.

    Returns:
        float32 tensor ``[N, 784]`` (``[N, prod(rest)]`` in general): each value is the
        pixel divided by 255, so 0 stays 0.0 and 255 becomes 1.0.
    """
    ### BEGIN SOLUTION
    return images.reshape(images.shape[0], -1).to(torch.float32) / 255.0
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_normalize", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Shape, dtype and values on two small images; the input must stay as it was.
# When graded, also: real MNIST test digits, a batch of a single image, and images of another shape than
#   28 x 28 (don't assume 784).
small = torch.zeros(2, 28, 28, dtype=torch.uint8)
small[0, 0, 0], small[0, 0, 1], small[1, 27, 27], small[1, 1, 0] = 255, 51, 128, 1
before = small.clone()
out = normalize(small)
checks.assert_shape(out, (2, 784), "normalize(uint8 [2, 28, 28])", hint="flatten each image: reshape(N, -1)")
checks.assert_dtype(out, torch.float32, "normalize(uint8 [2, 28, 28])", hint="convert with .float() before dividing")
checks.assert_unchanged(before, small, "normalize's input images")
# Tolerance 1e-6: dividing by 255 and multiplying by 1/255 may differ in the last bit (about 6e-8).
checks.assert_close(out[:, [0, 1, 28, 783]], torch.tensor([[1.0, 0.2, 0.0, 0.0], [0.0, 0.0, 1 / 255, 128 / 255]]),
                    "normalize(...)[:, [0, 1, 28, 783]]", atol=1e-6,
                    hint="divide by 255 (not 256), and flatten row after row (pixel [r, c] goes to r * 28 + c)")
### BEGIN HIDDEN TESTS
_images = read_idx(data.file_path("t10k-images-idx3-ubyte"))[:1000].clone()      # 1,000 real test digits
_before = _images.clone()
_out = normalize(_images)
checks.assert_unchanged(_before, _images, "normalize's input (the test images)")
_want = data.load_mnist("test")[0][:1000]      # grader.data's own [N, 784] float32 in [0, 1]
checks.assert_close(_out, _want, "normalize(1,000 test images)", atol=1e-6,
                    hint="divide the float pixels by 255 and flatten to [N, 784]")
_one = torch.randint(0, 256, (1, 28, 28), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
_o1 = normalize(_one)
checks.assert_shape(_o1, (1, 784), "normalize(a batch of one image)", hint="keep the batch dimension even when N is 1")
checks.assert_dtype(_o1, torch.float32, "normalize(a batch of one image)")
assert float(_o1.min()) >= 0.0 and float(_o1.max()) <= 1.0, "normalize must map 0..255 into [0, 1]"
checks.assert_equal((_o1 * 255).round().to(torch.uint8), _one.reshape(1, 784),
                    "normalize(x) * 255, rounded", hint="each value must be exactly the pixel / 255")
_flat = torch.randint(0, 256, (5, 3, 7), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
checks.assert_shape(normalize(_flat), (5, 21), "normalize(uint8 [5, 3, 7])",
                    hint="flatten everything after the first dimension; do not assume 784")
### END HIDDEN TESTS

# %% [markdown]
# The whole training set, ready for the network (0.19 GB of float32):

# %%
X_train = normalize(train_images)
y_train = train_labels.long()       # class indices for cross_entropy are int64
print(X_train.shape, X_train.dtype, f"{X_train.min().item():.1f}..{X_train.max().item():.1f}",
      f"| {X_train.numel() * X_train.element_size() / 1e6:.0f} MB")
print("mean pixel", round(X_train.mean().item(), 4), " std", round(X_train.std().item(), 4))

# %% [markdown]
# ## Why mini-batches?
#
# The loss we minimise is the *average* loss over all 60,000 training images, and its
# gradient is the average of 60,000 per-image gradients. There are three ways to take a
# step:
#
# * **All 60,000 at once** (*full-batch* gradient descent): the exact gradient, but one
#   step needs a forward and a backward pass over the whole set. The input alone is 188
#   MB of float32, and autograd keeps the hidden activations of every image for the
#   backward pass, `[60000, 128]` more floats for our small network and gigabytes for a
#   big one. Memory runs out, and each of the few steps an epoch allows is slow.
# * **One image at a time** (pure *stochastic* gradient descent): 60,000 cheap steps per
#   epoch, but one image is a very noisy estimate of the average, so the steps zigzag,
#   and processing a single 784-vector wastes hardware built to multiply matrices.
# * **A mini-batch of, say, 64**: the average over 64 random images. Cheap, fits anywhere,
#   keeps the matrix units busy, and points roughly the right way. This is the usual
#   compromise, and what "SGD" means in practice.
#
# We can measure "points roughly the right way". Below, for a linear classifier with
# small random weights, the gradient on a random batch is compared with the gradient on
# all 60,000 images through their cosine similarity (1: the same direction; 0: unrelated),
# averaged over 10 batches of each size, together with what one batch gradient costs.

# %%
agreement = demo.gradient_agreement(X_train, y_train, [1, 4, 16, 64, 256, 1024, 4096], trials=10, seed=0)
for bs, (cosine, seconds) in agreement.items():
    steps = math.ceil(60000 / bs)
    print(f"batch {bs:5d}: cosine {cosine:.3f} | {1000 * seconds:7.2f} ms per gradient, "
          f"x {steps:5d} steps = {seconds * steps:5.2f} s per epoch")
fig = demo.plot_gradient_agreement(agreement, n=60000)
plt.show()

# %% [markdown]
# A single image's gradient barely agrees with the full one (a cosine near 0.1); at 64
# it is about 0.65, clearly the right general direction; past a thousand it is nearly
# exact. Averaging `B` independent samples shrinks the noise only like `1/sqrt(B)`:
# sixteen times more work for four times less noise.
#
# The right panel is what an epoch of gradients costs on this machine's CPU (timings vary
# from machine to machine and from run to run). One image per step is by far the most
# expensive way through the data: 60,000 tiny computations, each paying the fixed cost of
# a call while the hardware built for matrices idles. Around 64 the epoch is many times
# cheaper. Larger batches make it little or no cheaper on a CPU (a GPU, lesson 09, keeps
# gaining for longer), and they take fewer steps: 15 per epoch at 4,096 instead of 938 at
# 64. Since the direction is already good at 64, many good-enough steps make more progress
# than a few excellent ones. Somewhere between tens and hundreds lies the sweet spot, and
# 64 is a common choice.
#
# With batches of 64, one *epoch* (one pass over the training set) is 937 full batches and
# a last one holding the remaining 60,000 − 937 × 64 = 32 images: **938 batches**. The
# last batch is simply smaller; dropping it (`drop_last=True` in PyTorch) would waste 32
# images every epoch.
#
# ## Exercise 3: `num_batches`
#
# The number of batches of one epoch: `ceil(n / batch_size)`. Integer arithmetic avoids
# any doubt about floating-point rounding.

# %% nbgrader={"grade": false, "grade_id": "num_batches", "locked": false, "schema_version": 3, "solution": true, "task": false}
def num_batches(n, batch_size):
    """How many batches one epoch over ``n`` samples makes, the last one possibly smaller.

    Args:
        n (int): number of samples, at least 0.
        batch_size (int): at least 1.

    Returns:
        int: ``ceil(n / batch_size)`` (0 when ``n`` is 0), the same as
        ``len(DataLoader(dataset_of_n_samples, batch_size))``.
    """
    ### BEGIN SOLUTION
    return (n + batch_size - 1) // batch_size
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_num_batches", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# When graded, also: no samples at all, n just below, at and just past a multiple of batch_size, batches of
#   one, and the result must be a plain int.
got = num_batches(60000, 64)
assert got == 938, f"num_batches(60000, 64) = {got}, expected 938: 937 full batches and a last one of 32"
### BEGIN HIDDEN TESTS
for _n, _bs in [(0, 1), (0, 64), (1, 64), (63, 64), (64, 64), (65, 64), (128, 64), (10, 3), (7, 1), (10000, 1000),
                (10001, 1000), (5, 10)]:
    with tripwire.forbid("data", what="num_batches"):
        _got = num_batches(_n, _bs)
    _want = reference.num_batches(_n, _bs)
    assert isinstance(_got, int) and not isinstance(_got, bool), \
        f"num_batches({_n}, {_bs}) should return an int, got {type(_got).__name__}"
    assert _got == _want, (f"num_batches({_n}, {_bs}) = {_got}, expected {_want}: count the last, smaller batch "
                           f"too, and no batch at all when n is 0")
### END HIDDEN TESTS

# %% [markdown]
# ## Why shuffle?
#
# A batch's gradient is only a good estimate of the full gradient if the batch looks like
# the data set: a fair sample of all ten digits. Files are often *not* in a random order.
# MNIST's training file happens to be mixed, but data sets stored as one folder per class,
# logs sorted by date, or anything produced by a `sort` arrive in blocks.
#
# Below, 60 samples are coloured by class and stored sorted, as such a file would be.
# Slice them into batches of 8 in file order and look at how many colours each batch
# holds; then shuffle first and slice again. (Press *new shuffle* for another
# permutation.)

# %%
demo.shuffle_widget(batch_size=8, seed=0)

# %% [markdown]
# In file order every batch holds one or two classes; shuffled, a batch of 8 holds five or
# six of the ten on average:

# %%
sorted_60 = demo.sorted_labels(60)
for shuffle in (False, True):
    batches = demo.batch_colours(sorted_60, batch_size=8, shuffle=shuffle, seed=0)
    print("shuffled   " if shuffle else "file order ", demo.classes_per_batch(batches))

# %% [markdown]
# ### What class-sorted batches do to training
#
# Now the real thing, kept small so that it runs in a second: 6,000 training images
# sorted by digit, one epoch of batches of 64, a linear classifier trained with SGD.
# Once in file order, once shuffled, everything else equal. Left: the loss on each step's
# own batch. Right: the loss on 1,000 test images the model never trains on, which is
# what the model has really learnt.

# %%
subset = torch.argsort(y_train[:6000], stable=True)          # 6,000 images, sorted by class
X_sorted, y_sorted = X_train[:6000][subset], y_train[:6000][subset]
X_eval = normalize(read_idx(data.file_path("t10k-images-idx3-ubyte"))[:1000])     # 1,000 held-out images
y_eval = read_idx(data.file_path("t10k-labels-idx1-ubyte"))[:1000].long()
orders = {"class-sorted": BatchSampler(SequentialSampler(range(6000)), 64, drop_last=False),
          "shuffled": BatchSampler(RandomSampler(range(6000), generator=torch.Generator().manual_seed(0)), 64,
                                   drop_last=False)}
runs = {name: demo.train_on_batches(X_sorted, y_sorted, list(order), X_eval, y_eval, lr=0.5)
        for name, order in orders.items()}
fig = demo.plot_order_effect(runs, y_sorted, batch_size=64)
plt.show()
for name, (batch_losses, eval_losses, predicted) in runs.items():
    top = torch.bincount(predicted, minlength=10).argmax().item()
    print(f"{name:12s}: last batch loss {batch_losses[-1]:.3f} | held-out: loss {eval_losses[-1]:.2f}, "
          f"accuracy {(predicted == y_eval).float().mean().item():.1%}, "
          f"{(predicted == top).float().mean().item():.0%} of the answers are '{top}'")

# %% [markdown]
# The sorted run looks excellent on its own batches: after a spike at each class change
# (the faint red lines), the batch loss falls to almost zero, because within a block the
# answer is always the same digit and the model learns exactly that, *predict the current
# class*. The held-out loss tells the truth: each block drags all the weights towards the
# newest digit and overwrites what the previous blocks taught, so after one epoch the
# model mostly answers "9". Shuffled, every batch pulls in a direction that helps all ten
# classes and the held-out loss falls steadily.
#
# The cure costs one line: draw a fresh random permutation of the indices every epoch,
# and slice it. Fresh every epoch, so that no fixed order (even a random one) is repeated.
#
# ## Exercise 4: `get_batches`
#
# A Python generator (use `yield`) that delivers one epoch:
#
# * `shuffle=True`: draw **one** permutation `torch.randperm(n, generator=generator)` and
#   slice it in order into pieces of `batch_size`; each piece is a batch of indices, and
#   the batch is `(X[idx], y[idx])`, so images and labels stay paired.
# * `shuffle=False`: the same, with the indices in order `0, 1, ..., n-1`; the generator
#   is not touched.
# * the last batch holds what is left (it is smaller when `batch_size` does not divide `n`);
#   nothing is dropped, nothing repeated.
#
# Drawing exactly one `randperm` from the generator, nothing else, is what makes your
# batches equal PyTorch's own sampler, index for index:
# `BatchSampler(RandomSampler(range(n), generator=g), batch_size, drop_last=False)`. The
# hidden tests compare with exactly that, so no `torch.utils.data` inside, and no
# `torch.manual_seed` either: the caller's generator carries the randomness.

# %% nbgrader={"grade": false, "grade_id": "get_batches", "locked": false, "schema_version": 3, "solution": true, "task": false}
def get_batches(X, y, batch_size, shuffle=True, generator=None):
    """Yield the mini-batches of one epoch.

    Args:
        X: tensor ``[N, ...]`` (for example float32 ``[N, 784]``). Not modified.
        y: tensor ``[N]`` of labels, paired with ``X`` row by row. Not modified.
        batch_size (int): at least 1; may exceed ``N`` (then one batch holds everything).
        shuffle (bool): if True, the order is ``torch.randperm(N, generator=generator)``,
            drawn once when the epoch starts; if False, the order is ``0, 1, ..., N-1``
            and the generator is not used.
        generator (torch.Generator or None): the source of randomness; None means the
            global generator (the one ``torch.manual_seed`` seeds).

    Yields:
        ``(x_batch, y_batch)`` = ``(X[idx], y[idx])`` for consecutive slices ``idx`` of
        ``batch_size`` indices of that order; the last one holds the remaining
        ``N - (num_batches - 1) * batch_size`` samples. Every sample appears exactly
        once per epoch.
    """
    ### BEGIN SOLUTION
    n = X.shape[0]
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield X[idx], y[idx]
    ### END SOLUTION


# %% [markdown]
# Look at one epoch of 10 samples in batches of 4 before running the tests: the labels
# here are the sample numbers, so you see the indices directly.

# %%
X_toy = torch.arange(10.0).unsqueeze(1) * 100          # [10, 1]: sample i holds 100 * i
y_toy = torch.arange(10)
for shuffle in (False, True):
    g = torch.Generator().manual_seed(0)
    print("shuffle =", shuffle, [yb.tolist() for _, yb in get_batches(X_toy, y_toy, 4, shuffle=shuffle, generator=g)])
print("PyTorch's sampler:", [b.tolist() for b in reference.index_batches(10, 4, torch.Generator().manual_seed(0))])

# %% nbgrader={"grade": true, "grade_id": "test_get_batches_cover", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# One epoch: every sample once, the last batch smaller, images paired with their labels.
# When graded, also: a single sample, batches of one, batch_size above n or dividing it exactly, no generator
#   given (the global one is used), and X with more than two dimensions.
X_t = torch.arange(30.0).reshape(10, 3)
y_t = torch.arange(10)
X_before, y_before = X_t.clone(), y_t.clone()
with tripwire.forbid("data", what="get_batches"):
    in_order = list(get_batches(X_t, y_t, 4, shuffle=False))
assert [len(yb) for _, yb in in_order] == [4, 4, 2], \
    f"batch sizes {[len(yb) for _, yb in in_order]} for 10 samples in batches of 4, expected [4, 4, 2]"
checks.assert_equal(torch.cat([yb for _, yb in in_order]), y_t, "labels of get_batches(shuffle=False), concatenated",
                    hint="shuffle=False keeps the order 0, 1, ..., n-1")
with tripwire.forbid("data", what="get_batches"):
    mixed = list(get_batches(X_t, y_t, 4, shuffle=True, generator=torch.Generator().manual_seed(0)))
checks.assert_unchanged(X_before, X_t, "get_batches's X")
checks.assert_unchanged(y_before, y_t, "get_batches's y")
seen = torch.cat([yb for _, yb in mixed])
checks.assert_equal(seen.sort().values, y_t, "all labels of one shuffled epoch, sorted",
                    hint="every sample exactly once per epoch: slice one permutation, keep the smaller last batch")
for xb, yb in mixed:
    checks.assert_equal(xb, X_t[yb], "x_batch of a shuffled epoch", hint="index X and y with the same indices")
### BEGIN HIDDEN TESTS
for _n, _bs in [(1, 1), (7, 1), (5, 10), (64, 64), (100, 64), (257, 16)]:
    _X = torch.arange(_n * 2, dtype=torch.float32).reshape(_n, 2)
    _y = torch.arange(_n) * 3 % _n if _n > 1 else torch.zeros(1, dtype=torch.long)
    _Xb, _yb = _X.clone(), _y.clone()
    for _shuffle in (False, True):
        torch.manual_seed(_n)                        # generator=None: the global generator is used
        with tripwire.forbid("data", what="get_batches"):
            _batches = list(get_batches(_X, _y, _bs, shuffle=_shuffle))
        checks.assert_unchanged(_Xb, _X, f"get_batches's X (n={_n})")
        checks.assert_unchanged(_yb, _y, f"get_batches's y (n={_n})")
        _sizes = [int(yb.shape[0]) for _, yb in _batches]
        _want = [min(_bs, _n - i) for i in range(0, _n, _bs)]
        assert _sizes == _want, f"get_batches(n={_n}, batch_size={_bs}, shuffle={_shuffle}): batch sizes {_sizes}, " \
                                f"expected {_want}"
        _rows = torch.cat([xb[:, 0] for xb, _ in _batches]).long() // 2
        checks.assert_equal(_rows.sort().values, torch.arange(_n), f"rows of one epoch (n={_n}, shuffle={_shuffle})",
                            hint="every sample exactly once")
        for xb, yb in _batches:
            checks.assert_equal(yb, _y[xb[:, 0].long() // 2], f"y_batch (n={_n}, batch_size={_bs})",
                                hint="the labels must stay paired with their images")
        if not _shuffle:
            checks.assert_equal(_rows, torch.arange(_n), f"rows of get_batches(n={_n}, shuffle=False)",
                                hint="shuffle=False keeps the file order")
_X3 = torch.randn(12, 2, 5, generator=torch.Generator().manual_seed(3))
with tripwire.forbid("data", what="get_batches"):
    _b3 = list(get_batches(_X3, torch.arange(12), 5, shuffle=False))
checks.assert_equal(_b3[2][0], _X3[10:], "last batch of a [12, 2, 5] X in batches of 5",
                    hint="X may have any shape [N, ...]")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_get_batches_order", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Index for index the batches of PyTorch's BatchSampler(RandomSampler(range(n), generator=g)).
# When graded, also: many sizes, batch sizes and seeds (up to the full training set), and the global random
#   state must make no difference.
X_t = torch.arange(30.0).reshape(10, 3)
y_t = torch.arange(10)
want = reference.index_batches(10, 4, torch.Generator().manual_seed(0))
with tripwire.forbid("data", what="get_batches"):
    got = list(get_batches(X_t, y_t, 4, generator=torch.Generator().manual_seed(0)))
assert len(got) == len(want), f"get_batches(n=10, batch_size=4) gave {len(got)} batches, expected {len(want)}"
for i, ((xb, yb), idx) in enumerate(zip(got, want)):
    checks.assert_equal(yb, y_t[idx], f"batch {i} of get_batches(n=10, batch_size=4, seed 0) (the sample indices)",
                        hint="draw exactly one torch.randperm(n, generator=generator) and slice it in order; "
                             "no torch.manual_seed, no other random draw")
    checks.assert_equal(xb, X_t[idx], f"x_batch {i} of get_batches(n=10, batch_size=4, seed 0)")
### BEGIN HIDDEN TESTS
for _n, _bs, _seed in [(12, 4, 1), (13, 4, 2), (100, 64, 3), (7, 1, 4), (5, 10, 5), (1, 1, 6), (1000, 64, 7),
                       (60000, 64, 8), (50, 50, 9), (51, 50, 10), (3000, 7, 11)]:
    _X = torch.arange(_n, dtype=torch.float32).unsqueeze(1).repeat(1, 3)
    _y = torch.arange(_n)
    _want = reference.index_batches(_n, _bs, torch.Generator().manual_seed(_seed))
    torch.manual_seed(1000 + _seed)               # the global generator must not matter
    with tripwire.forbid("data", what="get_batches"):
        _got = list(get_batches(_X, _y, _bs, shuffle=True, generator=torch.Generator().manual_seed(_seed)))
    assert len(_got) == len(_want), f"get_batches(n={_n}, batch_size={_bs}): {len(_got)} batches, expected {len(_want)}"
    for _i, ((xb, yb), _idx) in enumerate(zip(_got, _want)):
        checks.assert_equal(yb, _idx, f"batch {_i} of get_batches(n={_n}, batch_size={_bs}, seed {_seed})",
                            hint="one torch.randperm(n, generator=generator), sliced in order")
        checks.assert_equal(xb, _X[_idx], f"x_batch {_i} of get_batches(n={_n}, batch_size={_bs}, seed {_seed})")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_get_batches_epochs", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Two epochs from one generator: different orders, each the one PyTorch's sampler draws.
# When graded, also: several epochs and sizes against PyTorch's sampler, exactly one permutation drawn per
#   epoch, and shuffle=False must leave the generator untouched.
X_t = torch.arange(30.0).reshape(10, 3)
y_t = torch.arange(10)
g = torch.Generator().manual_seed(0)
with tripwire.forbid("data", what="get_batches"):
    epoch1 = torch.cat([yb for _, yb in get_batches(X_t, y_t, 4, generator=g)])
    epoch2 = torch.cat([yb for _, yb in get_batches(X_t, y_t, 4, generator=g)])
assert not torch.equal(epoch1, epoch2), \
    "two epochs with the same generator gave the same order: draw a new permutation from the generator every epoch"
### BEGIN HIDDEN TESTS
for _n, _bs, _seed in [(10, 4, 0), (100, 64, 1), (33, 5, 2), (2, 3, 3), (64, 8, 4)]:
    _X = torch.arange(_n, dtype=torch.float32).unsqueeze(1)
    _y = torch.arange(_n)
    _gr = torch.Generator().manual_seed(_seed)        # PyTorch's sampler draws from this one, one epoch at a time
    _gs = torch.Generator().manual_seed(_seed)        # get_batches draws from this one
    for _epoch in range(3):
        _want = reference.epoch_index_batches(_n, _bs, _gr)
        with tripwire.forbid("data", what="get_batches"):
            _got = [yb for _, yb in get_batches(_X, _y, _bs, generator=_gs)]
        assert len(_got) == len(_want) and all(torch.equal(a, b) for a, b in zip(_got, _want)), (
            f"epoch {_epoch + 1} of get_batches(n={_n}, batch_size={_bs}) with one generator (seed {_seed}) differs "
            f"from PyTorch's sampler: draw exactly one randperm per epoch and nothing else from the generator")
        assert torch.equal(_gs.get_state(), _gr.get_state()), (
            f"after epoch {_epoch + 1} (n={_n}) the generator is in another state than after one randperm({_n}): "
            f"get_batches must draw exactly one permutation per epoch from it, nothing more")
_g0 = torch.Generator().manual_seed(5)
_state = _g0.get_state().clone()
with tripwire.forbid("data", what="get_batches"):
    _ = list(get_batches(torch.zeros(20, 2), torch.arange(20), 6, shuffle=False, generator=_g0))
assert torch.equal(_g0.get_state(), _state), "get_batches(shuffle=False) drew from the generator; it must not use it"
### END HIDDEN TESTS

# %% [markdown]
# **Written question (2 points, graded by hand).** Two choices in `get_batches` look like
# details. Explain what each one changes for training.
#
# 1. A **fresh** permutation every epoch. Suppose instead the loop drew one random permutation
#    before the first epoch and reused it for every epoch. Each batch is still a fair mix of the
#    ten digits, so what is lost?
# 2. The **last, smaller batch**. With 60,000 images and batches of 64 it holds 32 images. What
#    happens to those images with `drop_last=True`, with and without shuffling? And what is
#    different about the training step made on that last batch? Give a data set and batch size
#    for which the choice matters much more than for MNIST at 64.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_shuffle_last_batch", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# *Rubric:* 1 point for each part. Part 1: with one fixed order every epoch repeats the very same
# batches in the same order, so the gradient noise is the same each epoch (correlated rather than
# fresh); the model can adapt to that sequence (the same batches always come last, just before
# evaluation) and SGD no longer samples a new estimate of the gradient; a fresh permutation makes
# each epoch an independent sample. Part 2: with `drop_last=True` and no shuffling the same 32
# images are never trained on; with shuffling a different 32 are skipped each epoch (all are seen
# over epochs, but each epoch wastes them); the last step averages over half as many images, so its
# gradient is noisier (about twice the variance) yet makes a step of the same size; an example where
# it matters: a small data set, e.g. 100 images in batches of 64, where `drop_last` throws away 36
# images (36 %) each epoch. Half a point for a part that names the effect without the reason.
#
# *Model answer:* (1) A single permutation, reused, turns the random order into a fixed one: epoch
# after epoch the same 938 batches arrive in the same sequence. Their gradients carry the same
# errors every time instead of fresh ones that average out across epochs, the last batches of the
# epoch always get the last word before the model is evaluated, and the run depends on one lucky
# or unlucky draw. Drawing a new permutation each epoch keeps each mini-batch gradient an
# unbiased, independent estimate of the full gradient, which is what SGD's argument relies on.
# (2) With `drop_last=True`, 32 images are left out of every epoch: without shuffling always the
# same 32, which the network then never learns from; with shuffling a different 32 each time, so
# they are seen over several epochs but each epoch still wastes them. Keeping the last batch costs
# one noisier step: its mean gradient is over 32 images instead of 64, so its variance is about
# twice as large, and a loop that averages batch losses gives those 32 images the weight of 64.
# For MNIST at 64 that is 1 step in 938. For 100 images in batches of 64 the last batch is 36
# images, 36 % of the data: dropping it discards a third of the set every epoch, and keeping it
# makes every second step a small one.
# ### END SOLUTION

# %% [markdown]
# Your batches, in file order and shuffled, for the 60 coloured samples of the widget (the
# labels stand in for images here):

# %%
labels_60 = torch.tensor(demo.sorted_labels(60))
for shuffle in (False, True):
    batches = [yb.tolist() for _, yb in get_batches(labels_60, labels_60, 8, shuffle=shuffle,
                                                    generator=torch.Generator().manual_seed(0))]
    print("shuffled   " if shuffle else "file order ", demo.classes_per_batch(batches), "classes per batch")
print("identical to the widget's batches:",
      batches == demo.batch_colours(demo.sorted_labels(60), 8, shuffle=True, seed=0))

# %% [markdown]
# ## What `DataLoader` adds
#
# The core of PyTorch's data pipeline is what you just wrote: a sampler that produces an
# order (`RandomSampler`: one `randperm` per epoch), a batch sampler that slices it
# (`BatchSampler`), and a loop that fetches the samples. `DataLoader` wraps that core with
# machinery that matters for large data:
#
# | feature | what it does | why it matters |
# |---|---|---|
# | `num_workers=k` | `k` worker processes load and prepare the next batches while the main process trains | reading JPEGs from disk or augmenting images can be slower than the GPU's step |
# | `pin_memory=True` | puts batches in page-locked CPU memory | copies to the GPU are faster and can overlap with computation |
# | `collate_fn` | turns a list of individual samples into one batch | samples can be dicts, strings, sequences of different lengths that need padding |
# | `Dataset` | `__getitem__(i)` and `__len__`: samples fetched one by one, lazily | data sets that do not fit in memory |
# | `drop_last`, `sampler=`, `batch_sampler=` | choose or replace the pieces | balanced sampling, distributed training, ... |
#
# MNIST fits in memory as one tensor, so none of that is needed here: indexing with a
# batch of indices is the whole data pipeline.
#
# ## A puzzle: same seed, different order
#
# Lesson 08 will train the network twice, by hand and with `torch.nn`, and demand the same
# numbers; that needs the same batches. So: does `DataLoader` with a seeded generator give
# the batches `get_batches` gives with the same seed?

# %%
X_small = torch.arange(20.0).unsqueeze(1)
y_small = torch.arange(20)
mine = [yb.tolist() for _, yb in get_batches(X_small, y_small, 8, generator=torch.Generator().manual_seed(0))]
loader = DataLoader(TensorDataset(X_small, y_small), batch_size=8, shuffle=True,
                    generator=torch.Generator().manual_seed(0))
theirs = [yb.tolist() for _, yb in loader]
print("get_batches:", mine)
print("DataLoader: ", theirs)
print("same batches:", mine == theirs)

# %% [markdown]
# They differ, yet you have just checked that `get_batches` equals
# `BatchSampler(RandomSampler(range(n), generator=g))`, and `shuffle=True` builds exactly
# that sampler inside the `DataLoader`. So the sampler is not the culprit. Something else
# must draw from the generator before the sampler does.
#
# **Your turn, before reading on:** the generator's state is an ordinary tensor
# (`g.get_state()`). Compare it before and after `DataLoader(...)`, and before and after
# `iter(loader)`, without taking a single batch. Then try to reproduce the change on a
# fresh generator by drawing something from it yourself.
#
# Here is that investigation, measured:

# %%
print("torch", torch.__version__)
g = torch.Generator().manual_seed(0)
start_state = g.get_state().clone()
loader = DataLoader(TensorDataset(X_small, y_small), batch_size=8, shuffle=True, generator=g)
print("state changed by DataLoader(...):", not torch.equal(start_state, g.get_state()))
batch_iter = iter(loader)
after_iter = g.get_state().clone()
print("state changed by iter(loader):   ", not torch.equal(start_state, after_iter), "(no batch taken yet)")

# %% [markdown]
# Creating the loader draws nothing; starting an epoch (`iter`) does, before any batch.
# How much? Apply candidate draws to a fresh generator with the same seed and see which
# ones leave it in the very same state:

# %%
candidates = {
    "nothing": lambda gen: None,
    "randperm(20)": lambda gen: torch.randperm(20, generator=gen),
    "one float32 (rand)": lambda gen: torch.rand(1, generator=gen),
    "one int64 (random_)": lambda gen: torch.empty((), dtype=torch.int64).random_(generator=gen),
    "one float64 (rand)": lambda gen: torch.rand(1, dtype=torch.float64, generator=gen),
}
for name, draw in candidates.items():
    fresh = torch.Generator().manual_seed(0)
    draw(fresh)
    print(f"{name:22s} -> same state as after iter(loader): {torch.equal(fresh.get_state(), after_iter)}")

# %% [markdown]
# Exactly 64 random bits were drawn: the state cannot tell an int64 from a float64, but
# the source can. `iter(loader)` builds a `_BaseDataLoaderIter`, whose constructor
# contains this line:

# %%
from torch.utils.data.dataloader import _BaseDataLoaderIter

source_lines = inspect.getsource(_BaseDataLoaderIter.__init__).splitlines()
for i, line in enumerate(source_lines):
    if ".random_(" in line:
        print("\n".join(source_lines[i - 2:i + 2]))
fresh = torch.Generator().manual_seed(0)
drawn = torch.empty((), dtype=torch.int64).random_(generator=fresh).item()
print("\nthe loader's _base_seed:", batch_iter._base_seed)
print("our own int64 draw:     ", drawn, "->", "equal" if drawn == batch_iter._base_seed else "different")

# %% [markdown]
# That is the answer. At the start of **every** epoch the loader draws a 64-bit *base
# seed* from your generator, and only then does its `RandomSampler` call `randperm` on
# the same generator, which is therefore one draw further along than in `get_batches`.
# The base seed is for worker processes: worker `i` seeds its own random generator with
# `base_seed + i`, so that random augmentations differ between workers yet stay
# reproducible. The loader draws it even with `num_workers=0`, where nothing uses it.
#
# So: draw the same 64 bits ourselves, then call `get_batches`. Two epochs in a row, one
# generator on each side, every image and label of every batch compared:

# %%
def with_base_seed(X, y, batch_size, generator):
    """get_batches, preceded by the base-seed draw DataLoader makes when an epoch starts."""
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    yield from get_batches(X, y, batch_size, shuffle=True, generator=generator)


def same_batches(ours, theirs):
    """True if both lists hold the same (x, y) batches, in the same order."""
    return len(ours) == len(theirs) and all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
                                            for a, b in zip(ours, theirs))


X_k, y_k = X_train[:1000], y_train[:1000]
dataset = TensorDataset(X_k, y_k)
g_mine, g_loader = torch.Generator().manual_seed(42), torch.Generator().manual_seed(42)
loader = DataLoader(dataset, batch_size=64, shuffle=True, generator=g_loader)
for epoch in (1, 2):
    print(f"epoch {epoch}: same batches: {same_batches(list(with_base_seed(X_k, y_k, 64, g_mine)), list(loader))}")

# %% [markdown]
# The first epoch agrees now; the second does not. Something more happens between two
# epochs. The same method finds it: run one whole epoch of the loader, then look for
# what our side must add, after the base seed and the permutation, to reach the same
# generator state.

# %%
g_loader = torch.Generator().manual_seed(0)
_ = list(DataLoader(dataset, batch_size=64, shuffle=True, generator=g_loader))
after_epoch = g_loader.get_state()
extras = {
    "nothing more": lambda gen: None,
    "one more int64": lambda gen: torch.empty((), dtype=torch.int64).random_(generator=gen),
    "one more randperm(1000)": lambda gen: torch.randperm(1000, generator=gen),
}
for name, draw in extras.items():
    fresh = torch.Generator().manual_seed(0)
    _ = list(with_base_seed(X_k, y_k, 64, fresh))
    draw(fresh)
    print(f"base seed + get_batches + {name:24s} -> same state: {torch.equal(fresh.get_state(), after_epoch)}")

# %% [markdown]
# A whole second permutation of the 1,000 indices, drawn and never used. Its origin is in
# `RandomSampler.__iter__`, which can hand out more samples than the data set holds
# (`num_samples > n`) by chaining permutations:

# %%
sampler_lines = inspect.getsource(RandomSampler.__iter__).splitlines()
first = next(i for i, line in enumerate(sampler_lines) if "self.num_samples // n" in line)
print("\n".join(sampler_lines[first:]))

# %% [markdown]
# With the default `num_samples == n` the loop yields one full permutation, and the last
# line then draws a second one only to keep its first `n % n = 0` elements. That line
# runs when the batch loop asks the sampler for one more index after the last, which is
# how the loop learns that the epoch is over. The batches are unaffected, and so is the
# first epoch (that is why `get_batches` matched `reference.index_batches` in the tests);
# the generator is simply one permutation further along when the next epoch begins.
#
# The complete recipe for an epoch in `DataLoader`'s footsteps is therefore: the base
# seed, your permutation, the unused one. Three epochs, every batch compared:

# %%
def dataloader_epoch(X, y, batch_size, generator):
    """One epoch of get_batches that makes the same draws as DataLoader(shuffle=True, generator=generator)."""
    torch.empty((), dtype=torch.int64).random_(generator=generator)    # DataLoader: the workers' base seed
    yield from get_batches(X, y, batch_size, shuffle=True, generator=generator)
    torch.randperm(X.shape[0], generator=generator)                     # RandomSampler: the unused permutation


g_mine, g_loader = torch.Generator().manual_seed(42), torch.Generator().manual_seed(42)
loader = DataLoader(dataset, batch_size=64, shuffle=True, generator=g_loader)
for epoch in (1, 2, 3):
    ours, theirs = list(dataloader_epoch(X_k, y_k, 64, g_mine)), list(loader)
    print(f"epoch {epoch}: {len(ours)} batches, same batches: {same_batches(ours, theirs)}, "
          f"same generator state afterwards: {torch.equal(g_mine.get_state(), g_loader.get_state())}")

# %% [markdown]
# Every image and every label of every batch agree, and the generators end in the same
# state. (Another route: give the generator to the sampler only,
# `DataLoader(dataset, batch_sampler=BatchSampler(RandomSampler(dataset, generator=g), 64, False))`;
# the loader then takes its base seed from the global generator, and only the unused
# permutation remains to copy.)
#
# The lesson is general: two pieces of code that share a random generator agree only if
# they make the **same draws in the same order**, including draws that no documentation
# mentions. When a comparison with the library fails on randomness, compare the
# generator's state step by step, as above, until you have found every extra draw.
#
# ## Check yourself
#
# No points, just immediate feedback.

# %%
quiz([
    Question("An IDX file starts with <code>00 00 08 03 00 00 27 10 00 00 00 1c 00 00 00 1c</code>. What does "
             "it hold?",
             ["3 values of 8 bits, then a 28x28 image",
              "10,000 images of 28x28 unsigned bytes",
              "270,991,360 images of 28x28 pixels"],
             answer=1,
             explanation="Byte 2 (08) is the type, unsigned byte; byte 3 (03) the number of dimensions; then "
                         "0x00002710 = 10,000, 0x1c = 28 and 28, each a big-endian 4-byte integer (270,991,360 is "
                         "what the same bytes give when read little-endian)."),
    Question("A reader decodes the sizes with <code>int.from_bytes(chunk, 'little')</code>. What happens on the "
             "MNIST training images?",
             ["Nothing: the sizes are small enough that byte order does not matter",
              "The count becomes 1,625,948,160 instead of 60,000 and the size check fails",
              "The images come out transposed"],
             answer=1,
             explanation="Byte order matters for every number that needs more than one byte: ea 60 read last-first "
                         "is a different number. A size check catches it; without one, a reshape would fail or, "
                         "worse, succeed with nonsense."),
    Question("Training on class-sorted batches, the loss on each step's batch gets very low. Why is the model "
             "still bad?",
             ["Because the learning rate is too high for sorted data",
              "Because within a block every answer is the same digit: the model learns to predict the current "
              "class and forgets the earlier ones",
              "Because sorted batches are smaller"],
             answer=1,
             explanation="A single-class batch is not a fair sample of the data, so its gradient points towards "
                         "'always answer this digit'. The held-out loss reveals it; shuffling every epoch fixes it."),
    Question("60,000 samples in batches of 64, <code>drop_last=False</code>: how many batches, and how big is the "
             "last?",
             ["937 batches, all of 64", "938 batches, the last of 32", "938 batches, the last of 64"],
             answer=1,
             explanation="60,000 = 937 x 64 + 32: ceil(60000 / 64) = 938 batches, the last holding the remaining 32."),
    Question("<code>DataLoader(ds, batch_size, shuffle=True, generator=g)</code> and <code>get_batches</code> with "
             "an identically seeded generator give different orders. Why?",
             ["DataLoader uses a different shuffling algorithm than randperm",
              "At the start of each epoch DataLoader draws a 64-bit base seed for its workers from g, before its "
              "sampler's randperm, so the permutation comes from a later state",
              "DataLoader ignores the generator when num_workers is 0"],
             answer=1,
             explanation="Its RandomSampler makes one randperm per epoch, like get_batches, but one int64 draw "
                         "earlier shifts the generator. Draw the same base seed yourself, or give the generator to "
                         "the sampler instead of the loader."),
])

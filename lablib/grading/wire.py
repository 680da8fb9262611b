"""What crosses between the grader and a submission's process: data only, never code.

A message is one frame on a pipe: an 8-byte length, a JSON header, then the raw bytes of its tensors. The JSON
holds ``None``, booleans, numbers, strings and lists as themselves; a tuple as ``{"tuple": [...]}``, a dict as
``{"dict": [[key, value], ...]}`` (string keys) and a tensor as ``{"tensor": [dtype, shape, offset]}``, whose
bytes sit in the blob. :func:`decode` builds nothing but those types -- no pickle, no import, no constructor of
the sender's choosing -- and refuses a frame over its size cap before reading it, a dtype outside
:data:`DTYPES`, a shape that does not match its bytes, and nesting over :data:`MAX_DEPTH`.

:func:`expect` then checks a decoded result against what an exercise's check expects (a tensor, a pair of
tensors, a list of strings ...): a result that does not fit is one line naming what came and what was expected.
"""
from __future__ import annotations

import json
import math
import os
import select
import struct
import time
from typing import Any

import torch

MAX_FRAME = 8 * 2 ** 20  # a result, or the arguments as the function left them: the checks' inputs are tiny
MAX_DEPTH = 16
MAX_NODES = 100_000
DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8, torch.int8, torch.int16,
    torch.int32, torch.int64, torch.bool)}


class WireError(ValueError):
    """A frame that is not data the grader accepts, worded as one line."""


# --------------------------------------------------------------------------------------------
# Encoding (both sides) and decoding (the grader's side of the boundary)
# --------------------------------------------------------------------------------------------
def describe(x: Any) -> str:
    """What ``x`` is, in a few words: ``a tensor float32 (3, 4)``, ``a list of 2``, ``a Foo``."""
    if torch.is_tensor(x):
        return f"a tensor {str(x.dtype).removeprefix('torch.')} {tuple(x.shape)}"
    if isinstance(x, (list, tuple)):
        return f"a {type(x).__name__} of {len(x)}"
    name = type(x).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def encode(value: Any) -> bytes:
    """One frame holding ``value`` (tensors are detached and copied to the CPU); anything that is not data raises
    :class:`WireError` naming it."""
    blob = bytearray()

    def tree(x, depth=0):
        if depth > MAX_DEPTH:
            raise WireError(f"nested deeper than {MAX_DEPTH}")
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, (int, float)):
            return x.item() if hasattr(x, "item") else (int(x) if isinstance(x, int) else float(x))
        if torch.is_tensor(x):
            if str(x.dtype).removeprefix("torch.") not in DTYPES:
                raise WireError(f"{describe(x)}: dtype not carried")
            t = x.detach().to("cpu").contiguous()
            offset = len(blob)
            blob.extend(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
            return {"tensor": [str(t.dtype).removeprefix("torch."), list(t.shape), offset]}
        if type(x).__module__ == "numpy" and hasattr(x, "dtype"):  # numpy scalars and arrays: as tensors
            return tree(torch.as_tensor(x) if getattr(x, "ndim", 0) else x.item(), depth)
        if isinstance(x, (list, tuple)):
            items = [tree(v, depth + 1) for v in x]
            return items if isinstance(x, list) else {"tuple": items}
        if isinstance(x, dict) and all(isinstance(k, str) for k in x):
            return {"dict": [[k, tree(v, depth + 1)] for k, v in x.items()]}
        raise WireError(f"{describe(x)} is not data the grader reads (tensors, numbers, strings, lists, tuples)")

    head = json.dumps(tree(value), allow_nan=True).encode()
    return struct.pack(">II", len(head), len(blob)) + head + bytes(blob)


def decode(frame: bytes) -> Any:
    """The value in ``frame``, built from data types only; :class:`WireError` if the frame is anything else."""
    if len(frame) < 8:
        raise WireError("a frame shorter than its header")
    n_head, n_blob = struct.unpack(">II", frame[:8])
    if 8 + n_head + n_blob != len(frame):
        raise WireError("a frame whose lengths do not add up")
    try:
        head = json.loads(frame[8:8 + n_head].decode())
    except (ValueError, RecursionError) as exc:
        raise WireError(f"a header that is not JSON ({type(exc).__name__})") from None
    blob = memoryview(frame)[8 + n_head:]
    nodes = [0]

    def build(x, depth=0):
        nodes[0] += 1
        if depth > MAX_DEPTH or nodes[0] > MAX_NODES:
            raise WireError(f"nested deeper than {MAX_DEPTH} or over {MAX_NODES:,} values")
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if isinstance(x, list):
            return [build(v, depth + 1) for v in x]
        if isinstance(x, dict) and len(x) == 1:
            (kind, body), = x.items()
            if kind == "tuple" and isinstance(body, list):
                return tuple(build(v, depth + 1) for v in body)
            if kind == "dict" and isinstance(body, list) and all(
                    isinstance(kv, list) and len(kv) == 2 and isinstance(kv[0], str) for kv in body):
                return {k: build(v, depth + 1) for k, v in body}
            if kind == "tensor":
                return _tensor(body, blob)
        raise WireError(f"a value the format does not define ({str(x)[:60]})")

    return build(head)


def _tensor(body, blob: memoryview) -> torch.Tensor:
    if not (isinstance(body, list) and len(body) == 3 and body[0] in DTYPES and isinstance(body[1], list)
            and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d for d in body[1])
            and isinstance(body[2], int) and body[2] >= 0):
        raise WireError(f"a tensor header the grader does not accept ({str(body)[:60]})")
    dtype, shape, offset = DTYPES[body[0]], body[1], body[2]
    numel = math.prod(shape)
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    if offset + nbytes > len(blob):
        raise WireError(f"a tensor of shape {tuple(shape)} whose bytes are not all there")
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    raw = torch.frombuffer(bytearray(blob[offset:offset + nbytes]), dtype=torch.uint8)
    return raw.view(dtype).reshape(shape)


# --------------------------------------------------------------------------------------------
# The pipe
# --------------------------------------------------------------------------------------------
class Channel:
    """Frames over two pipe ends. :meth:`recv` reads a frame's length first and refuses one over ``limit`` bytes
    without reading it; after any refusal the channel is closed (the other side broke the protocol)."""

    def __init__(self, read_fd: int, write_fd: int, limit: int = MAX_FRAME):
        self.read_fd, self.write_fd, self.limit, self.broken = read_fd, write_fd, limit, ""

    def send(self, value: Any, timeout: float = 600.0) -> None:
        """Write one frame; ``TimeoutError`` if the other side stops reading for ``timeout`` s."""
        frame = encode(value)
        view = memoryview(struct.pack(">Q", len(frame)) + frame)
        deadline = time.monotonic() + timeout
        while view:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [self.write_fd], [], left)[1]:
                raise TimeoutError
            view = view[os.write(self.write_fd, view[:4096]):]  # <= PIPE_BUF: never blocks once writable

    def _read(self, n: int, deadline: float) -> bytes:
        out = bytearray()
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(self.read_fd, min(n - len(out), 2 ** 20))
            if not chunk:
                raise EOFError
            out += chunk
        return bytes(out)

    def recv(self, timeout: float = 3600.0) -> Any:
        """The next value; ``TimeoutError`` after ``timeout`` s, ``EOFError`` if the other side is gone,
        :class:`WireError` for a frame that is too large or not data."""
        if self.broken:
            raise WireError(self.broken)
        deadline = time.monotonic() + timeout
        (n,) = struct.unpack(">Q", self._read(8, deadline))
        if n > self.limit:
            self.broken = f"sent {_size(n)}, more than a message may hold ({_size(self.limit)})"
            raise WireError(self.broken)
        try:
            return decode(self._read(n, deadline))
        except WireError as exc:
            self.broken = str(exc)
            raise

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def _size(n: int) -> str:
    return f"{n / 2 ** 20:.1f} MB" if n >= 2 ** 20 else f"{n:,} bytes"


# --------------------------------------------------------------------------------------------
# What each exercise's check expects back
# --------------------------------------------------------------------------------------------
def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


SHAPES = {
    "a tensor or a number": lambda x: torch.is_tensor(x) or _is_number(x),
    "a tuple of two tensors": lambda x: isinstance(x, (tuple, list)) and len(x) == 2 and all(map(torch.is_tensor, x)),
    "a list of strings": lambda x: isinstance(x, (list, tuple)) and all(isinstance(s, str) for s in x),
}
EXPECTS = {  # exercise -> what its function returns
    "01.next_token_loss": "a tensor or a number", "02.mask_prompt": "a tensor or a number",
    "03.lora_forward": "a tensor or a number", "04.bt_loss": "a tensor or a number",
    "05.gae": "a tuple of two tensors", "06.select": "a list of strings", "07.response_nll": "a tensor or a number",
}


def expect(name: str, result: Any) -> Any:
    """``result`` if it is what exercise ``name`` returns, else ``WireError``: what came, what was expected."""
    want = EXPECTS.get(name, "a tensor or a number")
    if not SHAPES[want](result):
        raise WireError(f"returned {describe(result)}; the check expects {want}")
    return result


def same_kind(before: Any, after: Any) -> bool:
    """Whether an argument came back as what it was sent as: a tensor of the same dtype and shape, a list of the
    same length, or (anything else) unchanged in type."""
    if torch.is_tensor(before):
        return torch.is_tensor(after) and after.dtype == before.dtype and after.shape == before.shape
    if isinstance(before, list):
        return isinstance(after, list) and len(after) == len(before)
    return type(after) is type(before) or (_is_number(before) and _is_number(after))

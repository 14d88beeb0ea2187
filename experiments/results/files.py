"""Atomic writes: a result file is either complete or absent, never partial."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def torch_bytes(obj) -> bytes:
    """``torch.save(obj)`` as bytes, the same in every process.

    torch's zip format holds a ``.data/serialization_id`` record that differs from one
    process to the next; it is only metadata for logging, so it is set to zeros here (the
    record keeps its length and alignment; both CRC-32 fields are updated).  Without this
    two runs of the ``data`` stage would give different hashes in ``dvc.lock``."""
    import io
    import struct
    import zipfile
    import zlib

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    raw = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
        infos = [i for i in zf.infolist() if i.filename.endswith(".data/serialization_id")]
        start_dir = zf.start_dir
    for info in infos:
        off = info.header_offset
        name_len, extra_len = struct.unpack_from("<HH", raw, off + 26)
        data_at = off + 30 + name_len + extra_len
        raw[data_at:data_at + info.compress_size] = b"0" * info.compress_size
        crc = zlib.crc32(b"0" * info.compress_size)
        struct.pack_into("<I", raw, off + 14, crc)  # local header
        pos = start_dir
        while raw[pos:pos + 4] == b"PK\x01\x02":  # central directory
            n, e, c = struct.unpack_from("<HHH", raw, pos + 28)
            if raw[pos + 46:pos + 46 + n].decode() == info.filename:
                struct.pack_into("<I", raw, pos + 16, crc)
            pos += 46 + n + e + c
    return bytes(raw)


def write_torch(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(torch_bytes(obj))


def write_json(path: Path, obj, strict: bool = True) -> None:
    """``obj`` as JSON.  ``strict``: a NaN or infinity is an error (reports are read by DVC
    and other tools); else they are written as ``NaN`` / ``Infinity``, which ``json.loads``
    reads back."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=not strict) + "\n")


def csv_text(rows: list[dict], fields: list[str], digits: int) -> str:
    """``rows`` as CSV (columns ``fields``; floats with ``digits`` decimals, fixed)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.{digits}f}" if isinstance(v, float) else v)
                         for k, v in r.items()})
    return buf.getvalue()

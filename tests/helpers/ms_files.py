"""Byte-level edits of model files for the corruption tests."""


def patch_u32(data: bytes, pos: int, value: int) -> bytes:
    """`data` with the little-endian uint32 at `pos` replaced."""
    return data[:pos] + value.to_bytes(4, "little") + data[pos + 4 :]

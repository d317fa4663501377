"""medzip codec: arrays of stored values in, bytes out. Knows nothing of DICOM, HDF5 or Prefect.

The entry points of codec.api load on first use, so importing codec.modes (configs do) costs no compiled kernels.
"""
from codec.errors import CodecError
from codec.modes import Mode, ModeError

__all__ = ["CodecError", "Mode", "ModeError", "codec_identity", "decode", "encode", "encode_many", "payload_info"]
_API = {"codec_identity", "decode", "encode", "encode_many", "payload_info"}


def __getattr__(name: str):
    if name in _API:
        from codec import api

        return getattr(api, name)
    raise AttributeError(f"module 'codec' has no attribute {name!r}")

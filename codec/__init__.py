"""medzip codec: arrays of stored values in, bytes out. Knows nothing of DICOM, HDF5 or Prefect."""
from codec.api import CodecError, decode, encode, payload_info
from codec.modes import Mode, ModeError

__all__ = ["CodecError", "Mode", "ModeError", "decode", "encode", "payload_info"]

"""medzip codec: arrays of stored values in, bytes out. Knows nothing of DICOM, HDF5 or Prefect."""
from codec.api import codec_identity, decode, encode, encode_many, payload_info
from codec.errors import CodecError
from codec.modes import Mode, ModeError

__all__ = ["CodecError", "Mode", "ModeError", "codec_identity", "decode", "encode", "encode_many", "payload_info"]

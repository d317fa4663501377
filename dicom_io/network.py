"""medzip's DICOM network side in one import: delivery to a PACS and the C-STORE listener."""
from dicom_io.pacs_listen import run_listener, safe_name, store_instance
from dicom_io.pacs_send import CStoreDestination, DeliveryError, DeliveryResult, deliver, send_cstore, send_stowrs

__all__ = [
    "CStoreDestination",
    "DeliveryError",
    "DeliveryResult",
    "deliver",
    "run_listener",
    "safe_name",
    "send_cstore",
    "send_stowrs",
    "store_instance",
]

"""The bundled real DICOM the tests read: lab/realdata.py finds it (the lab's benchmarks and training use it too)."""
from lab.realdata import all_files, data_roots, decoded_frames, find, grayscale_image_files

__all__ = ["all_files", "data_roots", "decoded_frames", "find", "grayscale_image_files"]

"""Safe reading of torch and pickle files: sniffing, the restricted unpickler, lazy tensors."""

from .containers import ModelFile, open_model_file, sniff
from .globals import GlobalUse
from .scan import ScanReport, scan_file
from .stubs import AttrStub, GlobalStub, ObjectStub
from .tensors import StorageRef, TensorRef
from .walk import describe, iter_tensors, module_attrs

__all__ = [
    "AttrStub", "GlobalStub", "GlobalUse", "ModelFile", "ObjectStub", "ScanReport", "StorageRef",
    "TensorRef", "describe", "iter_tensors", "module_attrs", "open_model_file", "scan_file", "sniff",
]

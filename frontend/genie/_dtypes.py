"""Mapping between torch dtypes and the runtime's dtype codes (tensor.h)."""

import torch

# Numbering is part of the SRG format (runtime/include/genie/tensor.h).
TORCH_TO_CODE = {
    torch.float32: 0,
    torch.float16: 1,
    torch.bfloat16: 2,
    torch.int64: 3,
    torch.int32: 4,
    torch.bool: 5,
}
CODE_TO_TORCH = {v: k for k, v in TORCH_TO_CODE.items()}
SUPPORTED = ", ".join(str(d).replace("torch.", "") for d in TORCH_TO_CODE)


def code_of(dtype, what):
    """Runtime code for a torch dtype, or an UnsupportedOperationError naming `what`."""
    try:
        return TORCH_TO_CODE[dtype]
    except KeyError:
        from ._errors import UnsupportedOperationError

        raise UnsupportedOperationError(
            f"genie: dtype {str(dtype).replace('torch.', '')} is not supported on "
            f"remote_accelerator ({what}); supported: {SUPPORTED}"
        ) from None

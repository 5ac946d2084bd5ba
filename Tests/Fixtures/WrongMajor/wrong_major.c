// A plugin built against a future ABI major: the host must refuse it, naming both versions.
#include "eft_backend.h"

static const eft_backend table = {
  .abi_major = EFT_ABI_VERSION_MAJOR + 1,
  .abi_minor = 0,
  .struct_size = sizeof(eft_backend),
  .name = "wrong-major",
  .version = "0",
};

const eft_backend *eft_backend_entry(void) { return &table; }

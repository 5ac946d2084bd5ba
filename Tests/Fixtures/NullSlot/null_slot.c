// A plugin of the right size and version whose required slots are NULL.
#include "eft_backend.h"

static const eft_backend table = {
  .abi_major = EFT_ABI_VERSION_MAJOR,
  .abi_minor = EFT_ABI_VERSION_MINOR,
  .struct_size = sizeof(eft_backend),
  .name = "null-slot",
  .version = "0",
};

const eft_backend *eft_backend_entry(void) { return &table; }

// A plugin whose table claims to be shorter than the slots ABI 1.0 requires.
#include "eft_backend.h"

static const eft_backend table = {
  .abi_major = EFT_ABI_VERSION_MAJOR,
  .abi_minor = 0,
  .struct_size = offsetof(eft_backend, session_new),
  .name = "short-table",
  .version = "0",
};

const eft_backend *eft_backend_entry(void) { return &table; }

// The broken-backend fixture built as a plugin of ABI 1.0 (minor 0, a table that ends before
// `session_append_batch`): the host must load it and batch by calling it once per session.
#define EFT_FIXTURE_ABI_1_0 1
#include "../BrokenBackend/broken_backend.c"

// libFuzzer's entry for programs with their own main (in libclang_rt.fuzzer_no_main, which
// scripts/fuzz.sh links into the fuzz targets; referenced only in FUZZING builds).
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*user_callback)(const uint8_t *data, size_t size));

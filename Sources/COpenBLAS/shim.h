// OpenBLAS's CBLAS declarations (Debian: libopenblas-dev). Only the types: Plugins/BLASBackend
// opens the library itself (OpenBLAS.swift), so that it can choose its kernels first.
#include <cblas.h>

// Nothing to compile: the target only carries include/libfuzzer.h to Swift.
#include "libfuzzer.h"

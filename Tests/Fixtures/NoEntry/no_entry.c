// A shared library that does not export eft_backend_entry: the host must refuse it, naming the symbol.
int eft_backend_entry_misspelled(void) { return 0; }

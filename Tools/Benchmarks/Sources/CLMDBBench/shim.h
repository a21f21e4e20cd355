// LMDB from the system package (Debian: liblmdb-dev), for the benchmark's raw-LMDB floor.
#include <lmdb.h>

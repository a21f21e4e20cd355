// LMDB from the system package (Debian: liblmdb-dev). Nothing else belongs here.
#include <lmdb.h>

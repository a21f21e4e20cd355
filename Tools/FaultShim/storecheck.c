// storecheck: reads every page a SessionStore store's LMDB environment references, in a
// process of its own, for the power-loss tests (Tests/IntegrationTests). Compiled at test
// time like the shims (with -llmdb).
//
//   storecheck <store-directory>
//
// Opens the environment read-only without the lock file (no other process uses it when
// the tests run this), walks the free-page database, the main database and every named
// database it lists with cursors, and reads every key and value byte. A damaged file can
// make LMDB read outside the map (SIGBUS, SIGSEGV): here that kills only this process,
// which the test reports, instead of the test process.
//
// Prints one line and exits 0 with "ok entries=<n> bytes=<n> txnid=<id> last-page=<n>",
// "empty" (data.mdb has no bytes: a store never created), or exits 1 with
// "error <call> <code> <message>".
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static unsigned long long entries = 0, bytes = 0, checksum = 0;

static void touch(MDB_val *value) {
    const unsigned char *data = value->mv_data;
    for (size_t i = 0; i < value->mv_size; i++) checksum = checksum * 31 + data[i];
    bytes += value->mv_size;
}

static int fail(const char *call, int rc) {
    printf("error %s %d %s\n", call, rc, mdb_strerror(rc));
    return 1;
}

/// Walks every entry of `dbi`; collects the main database's keys in `names` when given.
static int walk(MDB_txn *txn, MDB_dbi dbi, char names[][512], int *count, int capacity) {
    MDB_cursor *cursor;
    int rc = mdb_cursor_open(txn, dbi, &cursor);
    if (rc) return fail("mdb_cursor_open", rc);
    MDB_val key, value;
    while ((rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) == 0) {
        entries++;
        touch(&key);
        touch(&value);
        if (names && *count < capacity && key.mv_size < 512) {
            memcpy(names[*count], key.mv_data, key.mv_size);
            names[*count][key.mv_size] = 0;
            (*count)++;
        }
    }
    mdb_cursor_close(cursor);
    return rc == MDB_NOTFOUND ? 0 : fail("mdb_cursor_get", rc);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: storecheck <store-directory>\n");
        return 2;
    }
    char data[4096];
    snprintf(data, sizeof data, "%s/data.mdb", argv[1]);
    struct stat info;
    if (stat(data, &info) == 0 && info.st_size == 0) {
        printf("empty\n");
        return 0;
    }
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (rc) return fail("mdb_env_create", rc);
    mdb_env_set_maxdbs(env, 64);
    rc = mdb_env_open(env, argv[1], MDB_RDONLY | MDB_NOLOCK, 0600);
    if (rc) return fail("mdb_env_open", rc);
    MDB_txn *txn;
    rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (rc) return fail("mdb_txn_begin", rc);
    MDB_envinfo about;
    mdb_env_info(env, &about);
    if (walk(txn, 0, NULL, NULL, 0)) return 1;  // the free-page database
    MDB_dbi main;
    rc = mdb_dbi_open(txn, NULL, 0, &main);
    if (rc) return fail("mdb_dbi_open(main)", rc);
    static char names[64][512];
    int count = 0;
    if (walk(txn, main, names, &count, 64)) return 1;
    for (int i = 0; i < count; i++) {
        MDB_dbi dbi;
        rc = mdb_dbi_open(txn, names[i], 0, &dbi);
        if (rc == MDB_INCOMPATIBLE) continue;  // a plain key, not a named database
        if (rc) return fail("mdb_dbi_open(named)", rc);
        if (walk(txn, dbi, NULL, NULL, 0)) return 1;
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    printf("ok entries=%llu bytes=%llu checksum=%llx txnid=%zu last-page=%zu\n",
           entries, bytes, checksum, about.me_last_txnid, about.me_last_pgno);
    return 0;
}

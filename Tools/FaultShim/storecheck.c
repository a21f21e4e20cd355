// storecheck: reads every page a SessionStore store's LMDB environment references, in a
// process of its own, for the power-loss tests (Tests/IntegrationTests). Compiled at test
// time like the shims (with -llmdb).
//
//   storecheck <store-directory> [<scratch-directory>]
//
// Opens the environment read-only without the lock file (no other process uses it when
// the tests run this), walks the free-page database, the main database and every named
// database it lists with cursors, and reads every key and value byte. A damaged file can
// make LMDB read outside the map (SIGBUS, SIGSEGV): here that kills only this process,
// which the test reports, instead of the test process.
//
// With a scratch directory it then copies data.mdb there and commits a write transaction
// to the copy (puts into and deletes from every named database, which allocates pages
// from the free list and rewrites the free list at commit), and walks the copy again: a
// free list that lists pages still in use makes LMDB assert or fail there, not in the
// test process's own writes. The store itself is never written.
//
// Prints one line and exits 0 with "ok entries=<n> bytes=<n> txnid=<id> last-page=<n>",
// "empty" (data.mdb has no bytes: a store never created), or exits 1 with
// "error <call> <code> <message>".
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <unistd.h>
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

/// Walks every database of the environment at `directory`; collects the named ones.
static int walk_all(MDB_env *env, char names[][512], int *count) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (rc) return fail("mdb_txn_begin", rc);
    if (walk(txn, 0, NULL, NULL, 0)) return 1;  // the free-page database
    MDB_dbi main;
    rc = mdb_dbi_open(txn, NULL, 0, &main);
    if (rc) return fail("mdb_dbi_open(main)", rc);
    *count = 0;
    char all[64][512];
    int listed = 0;
    if (walk(txn, main, all, &listed, 64)) return 1;
    for (int i = 0; i < listed; i++) {
        MDB_dbi dbi;
        rc = mdb_dbi_open(txn, all[i], 0, &dbi);
        if (rc == MDB_INCOMPATIBLE) continue;  // a plain key, not a named database
        if (rc) return fail("mdb_dbi_open(named)", rc);
        if (walk(txn, dbi, NULL, NULL, 0)) return 1;
        memcpy(names[(*count)++], all[i], 512);
    }
    mdb_txn_abort(txn);
    return 0;
}

static int copy_file(const char *from, const char *to) {
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0) return -1;
    char buffer[65536];
    ssize_t n;
    while ((n = read(in, buffer, sizeof buffer)) > 0) {
        if (write(out, buffer, (size_t)n) != n) return -1;
    }
    close(in);
    close(out);
    return n < 0 ? -1 : 0;
}

/// Commits puts and deletes to every named database of the copy at `directory`.
static int write_copy(const char *directory, char names[][512], int count) {
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (rc) return fail("mdb_env_create(copy)", rc);
    mdb_env_set_maxdbs(env, 64);
    mdb_env_set_mapsize(env, (size_t)1 << 32);  // room for the writes, whatever the store's map
    rc = mdb_env_open(env, directory, MDB_NOLOCK | MDB_NOSYNC, 0600);
    if (rc) return fail("mdb_env_open(copy)", rc);
    MDB_txn *txn;
    rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc) return fail("mdb_txn_begin(copy, write)", rc);
    static char value[3000];
    for (int i = 0; i < count; i++) {
        MDB_dbi dbi;
        rc = mdb_dbi_open(txn, names[i], 0, &dbi);
        if (rc) return fail("mdb_dbi_open(copy)", rc);
        MDB_cursor *cursor;
        rc = mdb_cursor_open(txn, dbi, &cursor);
        if (rc) return fail("mdb_cursor_open(copy)", rc);
        MDB_val key, data;
        int seen = 0;
        while ((rc = mdb_cursor_get(cursor, &key, &data, seen == 0 ? MDB_FIRST : MDB_NEXT)) == 0 && seen < 192) {
            if (seen++ % 3 == 0 && (rc = mdb_cursor_del(cursor, 0)) != 0) return fail("mdb_cursor_del(copy)", rc);
        }
        if (rc && rc != MDB_NOTFOUND) return fail("mdb_cursor_get(copy)", rc);
        mdb_cursor_close(cursor);
        for (int k = 0; k < 64; k++) {
            char name[64];
            snprintf(name, sizeof name, "storecheck/%d", k);
            key.mv_data = name;
            key.mv_size = strlen(name);
            data.mv_data = value;
            data.mv_size = 100 + (size_t)k * 45;
            rc = mdb_put(txn, dbi, &key, &data, 0);
            if (rc) return fail("mdb_put(copy)", rc);
        }
    }
    rc = mdb_txn_commit(txn);
    if (rc) return fail("mdb_txn_commit(copy)", rc);
    char again[64][512];
    int named = 0;
    if (walk_all(env, again, &named)) return 1;
    mdb_env_close(env);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: storecheck <store-directory> [<scratch-directory>]\n");
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
    MDB_envinfo about;
    mdb_env_info(env, &about);
    static char names[64][512];
    int count = 0;
    if (walk_all(env, names, &count)) return 1;
    mdb_env_close(env);
    if (argc == 3) {
        char copy[4096];
        snprintf(copy, sizeof copy, "%s/data.mdb", argv[2]);
        if (copy_file(data, copy) != 0) {
            printf("error copy %d cannot copy data.mdb to %s\n", errno, argv[2]);
            return 1;
        }
        if (write_copy(argv[2], names, count)) return 1;
    }
    printf("ok entries=%llu bytes=%llu checksum=%llx txnid=%zu last-page=%zu%s\n",
           entries, bytes, checksum, about.me_last_txnid, about.me_last_pgno, argc == 3 ? " written" : "");
    return 0;
}

#include "store/SqliteStore.h"
#include "store/StoreQueries.h"

#include "store/SqliteUtil.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <stdexcept>
#include <system_error>

namespace clayhook {

using namespace store_sql;
// The schema, and why it looks like this.
//
// Measured on this machine (a noisy, shared 2-core VM; 150-200k inserts of a
// 600-byte body with a random 36-character key in batches of 256; per row,
// checkpoints included): events alone ~12-19 us; plus a dedup table keyed by
// a 64-bit hash as INTEGER PRIMARY KEY ~27-37 us; by a 16-byte hash in a
// WITHOUT ROWID table ~37-39 us; a text unique index on events(source, key)
// ~42-45 us; a WITHOUT ROWID table keyed by the text (source, key) ~49+ us.
// Keys are random, so every dedup insert lands on a random leaf and dirties
// one page per row: the cost follows the size of the entries, and the
// smallest entry wins. Hence:
//
// - events: `seq INTEGER PRIMARY KEY` is the rowid itself, so rows append at
//   the right edge of the table; the unique index on `id` also appends,
//   because ids grow with time (EventIdGenerator). AUTOINCREMENT (cost within
//   the noise: one small sqlite_sequence row per transaction) so a seq is
//   never reused after the newest events were deleted: a dedup record must
//   never come to point at another event than the one it was made for. The
//   body is the last column, so the small ones before it are read without
//   walking the body's overflow pages.
// - dedup: one row per (source, key), keyed by the 64-bit SipHash-2-4 of
//   (source, key) under a random per-database key, stored as the rowid
//   (`key_hash INTEGER PRIMARY KEY`): an 8-byte key in a rowid table is the
//   smallest entry SQLite has, ~20 bytes a row. It lives apart from events so
//   prune_dedup can forget it after the retention window while the events
//   stay. Its time is the first sight (received_at_ms): retries do not extend
//   it. The hash is only a locator, never trusted alone: on a hit the writer
//   compares the source and key of the event it points to, so a collision
//   (about 1 in 2^64 per pair, and not steerable by a sender since the key is
//   secret) can never turn a new event into a false duplicate; it is stored,
//   just without a dedup record of its own.
// - No index on first_seen_ms: it would cost every insert one more B-tree
//   write; prune walks the dedup table in hash order in small chunks instead.
//
// - deliveries: one row per (event, subscribed plugin), inserted in the
//   event's transaction. `state` 0 pending, 1 done, 2 dead. Rows append (id
//   is the rowid); `age_from_ms` is what max_age counts from (the event's
//   arrival, or the replay or the scheduled time); the partial indexes hold only pending and dead
//   rows, so start-up finds the pending ones and the admin API the dead ones without a scan, and a
//   done row leaves both. A delivery being handed over is not marked in the store: the dispatcher
//   owns it in memory, and after a crash it is simply still pending (at-least-once).
// - claimed_by, lease_until_ms: who is handling a delivery now and until
//   when (Store::claim). The attempt is counted at the claim, so a call cut
//   short by a crash still counts. One process holds a SQLite store (the
//   lock file), so the leases left by a crashed one are ended at open, with
//   the marker lease_until_ms = 1: "claimed, never reported".
// - lost_attempts: claims that never reported (the process died during the
//   call), counted by the next claim, which finds lease_until_ms <> 0. The
//   dispatcher makes a delivery dead once they reach dispatch.poison_after.
// - attempts: the history of attempts that did not succeed (retry, fail);
//   a successful one is recorded in its delivery row alone, so the common
//   path costs one row update.
// - kv, plugin_state: the plugins' key-value store and the paused flags.
//
// PostgreSQL can keep the same tables with a plain unique index on
// dedup(source, idempotency_key); that is the engine's business, the Store
// interface does not show it.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS store_meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    type TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS dedup (
    key_hash INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL,
    first_seen_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL,
    plugin TEXT NOT NULL,
    state INTEGER NOT NULL,
    due_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    scheduled INTEGER NOT NULL,
    age_from_ms INTEGER NOT NULL,
    finished_ms INTEGER NOT NULL,
    order_key TEXT NOT NULL,
    last_error TEXT NOT NULL,
    claimed_by TEXT NOT NULL DEFAULT '',
    lease_until_ms INTEGER NOT NULL DEFAULT 0,
    lost_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS deliveries_by_event ON deliveries(event_seq);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries(id) WHERE state = 0;
CREATE INDEX IF NOT EXISTS deliveries_dead ON deliveries(plugin, id) WHERE state = 2;
CREATE TABLE IF NOT EXISTS attempts (
    delivery_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_delivery ON attempts(delivery_id);
CREATE TABLE IF NOT EXISTS kv (
    plugin TEXT NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (plugin, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS plugin_state (
    plugin TEXT PRIMARY KEY,
    paused INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

namespace {

constexpr int64_t kSchemaVersion = 4;

}  // namespace

using namespace sqlite;

uint64_t siphash24(uint64_t k0, uint64_t k1, const void* data, size_t size) {
    const auto* in = static_cast<const unsigned char*>(data);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    uint64_t v3 = 0x7465646279746573ULL ^ k1;
    auto rotl = [](uint64_t x, int b) { return (x << b) | (x >> (64 - b)); };
    auto round = [&] {
        v0 += v1;
        v1 = rotl(v1, 13);
        v1 ^= v0;
        v0 = rotl(v0, 32);
        v2 += v3;
        v3 = rotl(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = rotl(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = rotl(v1, 17);
        v1 ^= v2;
        v2 = rotl(v2, 32);
    };
    const size_t full = size - size % 8;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        round();
        round();
        v0 ^= m;
    }
    uint64_t b = static_cast<uint64_t>(size) << 56;
    for (size_t i = 0; i < size % 8; ++i)
        b |= static_cast<uint64_t>(in[full + i]) << (8 * i);
    v3 ^= b;
    round();
    round();
    v0 ^= b;
    v2 ^= 0xff;
    for (int i = 0; i < 4; ++i)
        round();
    return v0 ^ v1 ^ v2 ^ v3;
}

void SqliteStore::DbCloser::operator()(sqlite3* db) const {
    // _v2: closes once the last statement is finalized, whatever the order.
    sqlite3_close_v2(db);
}

void SqliteStore::StmtFinalizer::operator()(sqlite3_stmt* s) const {
    sqlite3_finalize(s);
}

SqliteStore::SqliteStore(const StoreConfig& config, size_t max_queue, Tuning tuning)
    : durable_(config.durable),
      max_queue_(max_queue),
      tuning_(tuning),
      owner_(config.host_id.empty() ? default_store_owner() : config.host_id) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path abs = config.path.empty() ? fs::path() : fs::absolute(config.path, ec);
    path_ = ec || abs.empty() ? config.path : abs.lexically_normal().string();
    space_ = std::make_unique<FreeSpace>(path_, config.min_free_space);
    auto fail = [&](const std::string& why) {
        return std::runtime_error("cannot open store \"" + path_ + "\": " + why);
    };
    if (config.path.empty()) throw fail("the store path is empty");
    if (max_queue_ == 0) throw fail("the insert queue must hold at least one request");
    tuning_.max_batch = std::max<size_t>(tuning_.max_batch, 1);
    tuning_.prune_chunk = std::max<size_t>(tuning_.prune_chunk, 1);

    fs::path parent = fs::path(path_).parent_path();
    if (!parent.empty()) {
        fs::create_directories(parent, ec);
        if (ec) throw fail("cannot create folder \"" + parent.string() + "\": " + ec.message());
    }
    // Create the file ourselves so it starts private (SQLite would use 0644);
    // SQLite gives the -wal and -shm files the database file's mode.
    int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw fail(std::error_code(errno, std::generic_category()).message());
    ::close(fd);

    try {
        lock_exclusively();
        open_write_connection();
        // The file the writer has open, by identity: a path that later names
        // another file (or none) means the store was deleted or replaced.
        struct stat st {};
        if (::stat(path_.c_str(), &st) != 0)
            throw std::runtime_error(std::string("stat: ") + std::strerror(errno));
        file_dev_ = st.st_dev;
        file_ino_ = st.st_ino;
        create_schema();
        prepare_statements();
        readers_.push_back(open_reader());  // proves now that reading works
        SqliteCheckpointer::Limits ck;
        ck.trigger_pages = tuning_.checkpoint_pages;
        ck.restart_pages = tuning_.checkpoint_restart_pages;
        ck.writer_busy_timeout = tuning_.busy_timeout;
        checkpointer_ = std::make_unique<SqliteCheckpointer>(
            path_, durable_, ck,
            [](const std::string& what) { std::fprintf(stderr, "%s\n", what.c_str()); });
        checkpointer_->attach(wdb_.get());
        GroupCommit::Limits limits;
        limits.max_queue = max_queue_;
        limits.max_batch = tuning_.max_batch;
        limits.max_updates = tuning_.max_updates;
        gc_ = std::make_unique<GroupCommit>(static_cast<GroupCommit::Committer&>(*this), limits,
                                            "store " + path_);
        if (config.journal) {
            load_stored_keys();
            journal::Options jo;
            jo.dir = path_ + ".journal";
            jo.durable = durable_;
            jo.max_backlog = tuning_.journal_max_backlog;
            jo.segment_bytes = tuning_.journal_segment_bytes;
            jo.start_paused = tuning_.journal_start_paused;
            jo.warn = [](const std::string& what) { std::fprintf(stderr, "%s\n", what.c_str()); };
            jo.room_for = [this](uint64_t bytes) { return space_->room_for(bytes); };
            journal_ = std::make_unique<journal::Journal>(std::move(jo),
                                                          static_cast<journal::Index&>(*this));
        }
    } catch (const std::exception& e) {
        if (gc_) gc_->stop();
        if (lock_fd_ >= 0) ::close(lock_fd_);
        throw fail(e.what());
    }
}

SqliteStore::~SqliteStore() {
    journal_.reset();  // indexes what it holds, through the writer
    gc_->stop();       // answers everything queued first
    gc_.reset();
    checkpointer_.reset();  // after the last commit, before the writer closes
    wdb_.reset();
    readers_.clear();
    ::close(lock_fd_);  // the lock goes with the descriptor
}

// One process at a time serves a SQLite store: two would hand out the same
// deliveries. An exclusive flock on "<path>.lock" (not on the database file,
// where SQLite keeps its own POSIX locks) is held while the store is open and
// released by the kernel when the process dies, however it dies. The file
// names the holder, for the refusal.
void SqliteStore::lock_exclusively() {
    const std::string lock_path = path_ + ".lock";
    lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0)
        throw std::runtime_error("cannot open lock file " + lock_path + ": " +
                                 std::error_code(errno, std::generic_category()).message());
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        std::string holder;
        char buf[256];
        ssize_t n = ::pread(lock_fd_, buf, sizeof buf - 1, 0);
        if (n > 0) holder.assign(buf, static_cast<size_t>(n));
        while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0'))
            holder.pop_back();
        ::close(lock_fd_);
        lock_fd_ = -1;
        if (err == EWOULDBLOCK)
            throw std::runtime_error("it is in use by another clayhook process (" +
                                     (holder.empty() ? std::string("holder unknown") : holder) +
                                     "; lock file " + lock_path +
                                     "). One host serves a SQLite store; several hosts share a "
                                     "PostgreSQL store (store.engine: postgres)");
        throw std::runtime_error("cannot lock " + lock_path + ": " +
                                 std::error_code(err, std::generic_category()).message());
    }
    const std::string me = "held by " + owner_ + "\n";
    if (::ftruncate(lock_fd_, 0) != 0 ||
        ::pwrite(lock_fd_, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
        // The lock is what matters; the name is a courtesy.
    }
}

void SqliteStore::open_write_connection() {
    sqlite3* db = nullptr;
    // NOMUTEX: after the constructor one thread at a time touches it: whoever
    // holds busy_ (a leading caller or the writer thread), handed over under mu_.
    int rc =
        sqlite3_open_v2(path_.c_str(), &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    wdb_.reset(db);
    if (rc != SQLITE_OK) throw std::runtime_error(db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, static_cast<int>(tuning_.busy_timeout.count()));

    // Reading the mode back also proves the file is a database at all ("file
    // is not a database" surfaces here) and that WAL is possible on this
    // filesystem (it needs shared memory; some network mounts refuse it).
    std::string mode = query_text(db, "PRAGMA journal_mode=WAL");
    std::transform(mode.begin(), mode.end(), mode.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (mode != "wal")
        throw std::runtime_error("cannot use WAL mode (journal_mode is " + mode + ")");
    settings_.journal_mode = mode;
    // FULL fsyncs the WAL at every commit: an acknowledged event survives a
    // power cut. NORMAL fsyncs only at checkpoints: it survives a crash of
    // the process, not of the machine.
    exec(db, durable_ ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    settings_.synchronous = std::stoi(query_text(db, "PRAGMA synchronous"));
    // After a burst the WAL file stays at its high-water mark unless told
    // otherwise; 64 MiB bounds the disk it keeps.
    exec(db, "PRAGMA journal_size_limit=67108864");
}

void SqliteStore::create_schema() {
    sqlite3* db = wdb_.get();
    // One transaction: two processes opening a new file at once must agree
    // on the one hash key.
    exec(db, "BEGIN IMMEDIATE");
    try {
        exec(db, kSchema);
        exec(db,
             "INSERT INTO store_meta(name, value) VALUES('schema_version', 4)"
             " ON CONFLICT(name) DO NOTHING");
        std::string version = query_text(
            db, "SELECT CAST(value AS TEXT) FROM store_meta WHERE name = 'schema_version'");
        if (std::stoll(version) > kSchemaVersion) {
            throw std::runtime_error("its schema version " + version +
                                     " is newer than this clayhook understands (" +
                                     std::to_string(kSchemaVersion) + ")");
        }

        // Version 1 had no deliveries: CREATE ... IF NOT EXISTS above added
        // them, and events stored before stay undelivered (nothing was
        // subscribed then).
        // Early version 2 files had no age_from_ms (0: count from arrival);
        // version 3 added the claims, version 4 the lost attempts.
        auto add_column = [db](const char* name, const char* ddl) {
            if (query_text(db, (std::string("SELECT count(*) FROM pragma_table_info('deliveries')"
                                            " WHERE name = '") +
                                name + "'")
                                   .c_str()) == "0")
                exec(db, ddl);
        };
        add_column("age_from_ms",
                   "ALTER TABLE deliveries ADD COLUMN age_from_ms INTEGER NOT NULL DEFAULT 0");
        add_column("claimed_by",
                   "ALTER TABLE deliveries ADD COLUMN claimed_by TEXT NOT NULL DEFAULT ''");
        add_column("lease_until_ms",
                   "ALTER TABLE deliveries ADD COLUMN lease_until_ms INTEGER NOT NULL DEFAULT 0");
        add_column("lost_attempts",
                   "ALTER TABLE deliveries ADD COLUMN lost_attempts INTEGER NOT NULL DEFAULT 0");
        // The ordered deliveries still to run, by key: the claim's ordering check.
        exec(db,
             "CREATE INDEX IF NOT EXISTS deliveries_pending_by_key"
             " ON deliveries(plugin, order_key, id) WHERE state = 0 AND order_key <> ''");
        exec(db, "UPDATE store_meta SET value = 4 WHERE name = 'schema_version' AND value < 4");
        // This process holds the store alone (the lock file): claims left by
        // one that crashed are nobody's now. Their attempts stay counted, and
        // the marker 1 makes their next claim count a lost attempt.
        exec(db, "UPDATE deliveries SET lease_until_ms = 1 WHERE state = 0 AND lease_until_ms > 1");

        std::string key =
            query_text(db, "SELECT value FROM store_meta WHERE name = 'dedup_hash_key'");
        if (key.empty()) {
            std::random_device rd;
            unsigned char bytes[16];
            for (int i = 0; i < 16; i += 4) {
                uint32_t r = rd();
                for (int j = 0; j < 4; ++j)
                    bytes[i + j] = static_cast<unsigned char>(r >> (8 * j));
            }
            sqlite3_stmt* s = nullptr;
            if (sqlite3_prepare_v2(
                    db, "INSERT INTO store_meta(name, value) VALUES('dedup_hash_key', ?1)", -1, &s,
                    nullptr) != SQLITE_OK) {
                throw std::runtime_error(sqlite3_errmsg(db));
            }
            StmtPtr guard(s);
            sqlite3_bind_blob(s, 1, bytes, sizeof bytes, kStatic);
            if (sqlite3_step(s) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db));
            key.assign(reinterpret_cast<const char*>(bytes), sizeof bytes);
        }
        if (key.size() != 16) {
            throw std::runtime_error("its dedup hash key is " + std::to_string(key.size()) +
                                     " bytes, not 16 (damaged store_meta)");
        }
        const auto* k = reinterpret_cast<const unsigned char*>(key.data());
        hash_k0_ = load_le64(k);
        hash_k1_ = load_le64(k + 8);
        exec(db, "COMMIT");
    } catch (...) {
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

void SqliteStore::prepare_statements() {
    sqlite3* db = wdb_.get();
    auto prepare = [db](StmtPtr& out, const char* sql) {
        sqlite3_stmt* s = nullptr;
        if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) {
            throw std::runtime_error(std::string(sqlite3_errmsg(db)) + " in: " + sql);
        }
        out.reset(s);
    };
    prepare(begin_, "BEGIN IMMEDIATE");
    prepare(commit_, "COMMIT");
    prepare(rollback_, "ROLLBACK");
    // The highest seq ever handed out (sqlite_sequence survives deletes).
    prepare(max_seq_,
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),"
            " coalesce((SELECT max(seq) FROM events), 0))");
    prepare(insert_dedup_,
            "INSERT INTO dedup(key_hash, event_seq, first_seen_ms) VALUES(?1, ?2, ?3)"
            " ON CONFLICT(key_hash) DO NOTHING");
    prepare(find_dup_,
            "SELECT e.id, e.source, e.idempotency_key FROM dedup d"
            " LEFT JOIN events e ON e.seq = d.event_seq WHERE d.key_hash = ?1");
    prepare(repoint_dedup_,
            "UPDATE dedup SET event_seq = ?2, first_seen_ms = ?3 WHERE key_hash = ?1");
    prepare(insert_event_,
            "INSERT INTO events(seq, id, source, type, idempotency_key, received_at_ms, body)"
            " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    prepare(prune_scan_,
            "SELECT key_hash, first_seen_ms FROM dedup WHERE key_hash >= ?1"
            " ORDER BY key_hash LIMIT ?2");
    prepare(prune_delete_, "DELETE FROM dedup WHERE key_hash = ?1");
    prepare(insert_delivery_,
            "INSERT INTO deliveries(event_seq, plugin, state, due_ms, attempts, scheduled,"
            " age_from_ms, finished_ms, order_key, last_error)"
            " VALUES(?1, ?2, 0, ?3, 0, 0, ?3, 0, ?4, '')");
    // A result ends the lease; one for a delivery another owner claimed since
    // is dropped (never the case with one process, kept for the contract), and
    // so is one for a delivery no longer pending (an operator marked it dead).
    prepare(update_delivery_,
            "UPDATE deliveries SET state = ?2, attempts = ?3, due_ms = ?4, finished_ms = ?5,"
            " last_error = ?6, lease_until_ms = 0"
            " WHERE id = ?1 AND state = 0 AND (claimed_by = ?7 OR claimed_by = '')");
    // One process holds the file, so no lease of another can be live and the
    // dispatcher's own queue keeps the order: pending is all a claim checks.
    prepare(claim_,
            "UPDATE deliveries SET attempts = attempts + 1,"
            " lost_attempts = lost_attempts + (lease_until_ms <> 0), claimed_by = ?2,"
            " lease_until_ms = ?3 WHERE id = ?1 AND state = 0 RETURNING attempts, lost_attempts");
    prepare(insert_attempt_,
            "INSERT INTO attempts(delivery_id, attempt, started_ms, duration_us, outcome, reason)"
            " VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
}

std::unique_ptr<SqliteStore::Reader> SqliteStore::open_reader() {
    auto r = std::make_unique<Reader>();
    sqlite3* db = nullptr;
    // NOMUTEX: a lease gives one caller at a time. Read-write (not READONLY)
    // so it may map the -shm; query_only keeps it from ever writing.
    int rc =
        sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    r->db.reset(db);
    if (rc != SQLITE_OK) {
        throw std::runtime_error("open a read connection to " + path_ + ": " +
                                 (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, static_cast<int>(tuning_.busy_timeout.count()));
    exec(db, "PRAGMA query_only=1");
    return r;
}

sqlite3_stmt* SqliteStore::Reader::stmt(const char* sql) {
    for (auto& [key, st] : stmts)
        if (key == sql) {
            sqlite3_reset(st.get());
            sqlite3_clear_bindings(st.get());
            return st.get();
        }
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v3(db.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr) !=
        SQLITE_OK) {
        throw std::runtime_error(std::string(sqlite3_errmsg(db.get())) + " in: " + sql);
    }
    stmts.emplace_back(sql, StmtPtr(st));
    return st;
}

SqliteStore::ReaderLease SqliteStore::reader() {
    {
        std::lock_guard lk(readers_mu_);
        if (!readers_.empty()) {
            auto r = std::move(readers_.back());
            readers_.pop_back();
            return ReaderLease(*this, std::move(r));
        }
    }
    return ReaderLease(*this, open_reader());
}

SqliteStore::ReaderLease::~ReaderLease() {
    if (!r_) return;
    for (auto& [key, st] : r_->stmts)
        sqlite3_reset(st.get());  // no read transaction stays open in an idle connection
    std::lock_guard lk(s_.readers_mu_);
    s_.readers_.push_back(std::move(r_));
}

Store::Usage SqliteStore::usage() noexcept {
    Usage u;
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0) {
        u.bytes = st.st_size;
        if (::stat((path_ + "-wal").c_str(), &st) == 0) u.bytes += st.st_size;
    }
    const SqliteCheckpointer::Stats cs = checkpointer_->stats();
    u.checkpoints = static_cast<int64_t>(cs.passes);
    u.checkpoint_restarts = static_cast<int64_t>(cs.restarts);
    u.checkpoint_failures = static_cast<int64_t>(cs.failures);
    if (journal_) {
        const journal::Journal::Stats js = journal_->stats();
        u.journal_backlog = static_cast<int64_t>(js.backlog);
        u.journal_syncs = static_cast<int64_t>(js.syncs);
        u.journal_synced_records = static_cast<int64_t>(js.synced_records);
        u.journal_sync_us = static_cast<int64_t>(js.sync_us);
        for (size_t i = 0; i < js.slow_syncs.size(); ++i)
            u.journal_slow_syncs[i] = static_cast<int64_t>(js.slow_syncs[i]);
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator(path_ + ".journal", ec)) {
            std::error_code size_ec;
            const auto n = e.file_size(size_ec);
            if (!size_ec && u.bytes >= 0) u.bytes += static_cast<int64_t>(n);
        }
    }
    if (const auto free = space_->free_bytes()) u.free_bytes = static_cast<int64_t>(*free);
    try {
        auto r = reader();
        // deliveries_pending holds the pending ids: the first one is a seek.
        sqlite3_stmt* s = r->stmt(
            "SELECT e.received_at_ms FROM deliveries d JOIN events e ON e.seq = d.event_seq"
            " WHERE d.state = 0 ORDER BY d.id LIMIT 1");
        u.oldest_pending_ms = step(r.db(), s, "find the oldest pending delivery")
                                  ? std::max<int64_t>(sqlite3_column_int64(s, 0), 1)
                                  : 0;
    } catch (const std::exception&) {
        // -1: unknown, /metrics leaves it out.
    }
    return u;
}

bool SqliteStore::file_in_place() const noexcept {
    struct stat st {};
    return ::stat(path_.c_str(), &st) == 0 && st.st_dev == file_dev_ && st.st_ino == file_ino_;
}

bool SqliteStore::commit(GroupCommit::Batch& batch, std::string& error) noexcept {
    sqlite3* db = wdb_.get();
    new_deliveries_.clear();
    // Deleted (rm -r var/) or replaced under the host: what it would commit
    // now goes to a file no one will read again. Nothing is acknowledged
    // until the path names the open file again (moved back); a restart
    // opens whatever is there.
    if (!file_in_place()) {
        error = "the database file " + path_ +
                " was deleted or replaced while the host had it open; nothing is acknowledged "
                "until it is back in place (or the host is restarted on a restored copy)";
        writable_.store(false, std::memory_order_relaxed);
        return false;
    }
    // IMMEDIATE takes the write lock now, so another process holding it shows
    // up here (after the busy timeout), not halfway through the batch.
    if (!run(db, begin_.get(), "begin transaction", error)) {
        writable_.store(false, std::memory_order_relaxed);
        return false;  // `updates` stay with the caller, for the next try
    }
    bool ok = true;
    int64_t next_seq = 0;
    if (!batch.inserts.empty()) {
        sqlite3_stmt* s = max_seq_.get();
        if (sqlite3_step(s) == SQLITE_ROW) {
            next_seq = sqlite3_column_int64(s, 0);
        } else {
            error = describe(db, "read the last event seq");
            ok = false;
        }
        sqlite3_reset(s);
    }
    // Short of room: the new deliveries are refused (503, the sender
    // retries), and the results and claims below still commit, in the room
    // min_free_space keeps for them.
    std::string no_room;
    if (!batch.inserts.empty()) {
        uint64_t bytes = 0;
        for (const auto* in : batch.inserts)
            bytes += in->event->body.size();
        no_room = space_->check(bytes);
    }
    for (size_t i = 0; ok && i < batch.inserts.size(); ++i) {
        if (!no_room.empty())
            batch.inserts[i]->result = {InsertStatus::unavailable, {}, no_room};
        else
            ok = insert_one(*batch.inserts[i], next_seq, error);
    }
    // Results before claims: a delivery whose retry is claimed again in this
    // same batch gets its earlier result first.
    for (size_t i = 0; ok && i < batch.updates.size(); ++i)
        ok = apply_update(batch.updates[i], error);
    for (size_t i = 0; ok && i < batch.claims.size(); ++i)
        ok = apply_claims(*batch.claims[i], error);
    if (ok) ok = run(db, commit_.get(), "commit", error);
    if (!ok) {
        rollback_if_open();
        writable_.store(false, std::memory_order_relaxed);
        new_deliveries_.clear();
        return false;  // `updates` stay with the caller, for the next try
    }
    writable_.store(true, std::memory_order_relaxed);
    batch.updates.clear();
    if (!batch.inserts.empty() || !new_deliveries_.empty())
        notify_committed(batch.inserts.size(), new_deliveries_);
    new_deliveries_.clear();
    return true;
}

bool SqliteStore::apply_claims(GroupCommit::Claim& c, std::string& error) {
    sqlite3* db = wdb_.get();
    sqlite3_stmt* s = claim_.get();
    c.claimed.clear();
    for (int64_t id : c.ids) {
        sqlite3_bind_int64(s, 1, id);
        bind_text(s, 2, owner_);
        sqlite3_bind_int64(s, 3, c.lease_until_ms);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            c.claimed.push_back({id, static_cast<uint32_t>(sqlite3_column_int64(s, 0)),
                                 static_cast<uint32_t>(sqlite3_column_int64(s, 1))});
            rc = sqlite3_step(s);
        }
        if (rc != SQLITE_DONE) {
            error = describe(db, "claim a delivery");
            sqlite3_reset(s);
            return false;
        }
        sqlite3_reset(s);
    }
    return true;
}

bool SqliteStore::insert_one(GroupCommit::Insert& r, int64_t& next_seq, std::string& error) {
    sqlite3* db = wdb_.get();
    const NewEvent& e = *r.event;

    // Bind the event's own columns first: a value SQLite refuses (beyond its
    // length limit) fails here, before anything was written, and fails only
    // this item.
    if (!bind_event_columns(e)) {
        r.result = {InsertStatus::unavailable, {}, describe(db, "event refused by the store")};
        return true;
    }

    // The dedup record goes first, pointing at the seq the event will get
    // (we are the only writer inside BEGIN IMMEDIATE, so the next seq is ours):
    // the unique key decides stored vs duplicate, including against an
    // earlier item of this same batch.
    const int64_t hash = dedup_hash_of(e.source, e.idempotency_key);
    // Before the commit, and so before the journal lets go of the record: an
    // intake that misses it in the journal's memory finds it here.
    if (stored_keys_) stored_keys_->add(static_cast<uint64_t>(hash));
    sqlite3_stmt* d = insert_dedup_.get();
    sqlite3_bind_int64(d, 1, hash);
    sqlite3_bind_int64(d, 2, next_seq + 1);
    sqlite3_bind_int64(d, 3, e.received_at_ms);
    if (!run(db, d, "record the idempotency key", error)) return false;
    if (sqlite3_changes(db) == 1) {
        std::string id;
        if (!insert_event_row(++next_seq, e.id, id, error)) return false;
        if (!insert_deliveries(e, next_seq, error)) return false;
        r.result = {InsertStatus::stored, std::move(id), {}};
        return true;
    }

    // The hash is taken. Normally by the same (source, key): a duplicate.
    sqlite3_stmt* f = find_dup_.get();
    sqlite3_bind_int64(f, 1, hash);
    int rc = sqlite3_step(f);
    if (rc != SQLITE_ROW) {
        error = rc == SQLITE_DONE ? std::string("dedup conflict without a dedup record")
                                  : describe(db, "look up the earlier event");
        sqlite3_reset(f);
        return false;
    }
    const bool event_exists = sqlite3_column_type(f, 0) != SQLITE_NULL;
    if (event_exists && column_view(f, 1) == e.source && column_view(f, 2) == e.idempotency_key) {
        r.result = {InsertStatus::duplicate, std::string(column_view(f, 0)), {}};
        sqlite3_reset(f);
        return true;
    }
    sqlite3_reset(f);

    // Not a duplicate after all: the record points at an event that is gone
    // (deleted by a retention job), so it is repointed at this one; or it
    // belongs to another key with the same 64-bit hash, which keeps it, and
    // this event is stored without a record of its own.
    std::string id;
    const int64_t seq = ++next_seq;
    if (!insert_event_row(seq, e.id, id, error)) return false;
    if (!insert_deliveries(e, seq, error)) return false;
    if (!event_exists) {
        sqlite3_stmt* u = repoint_dedup_.get();
        sqlite3_bind_int64(u, 1, hash);
        sqlite3_bind_int64(u, 2, seq);
        sqlite3_bind_int64(u, 3, e.received_at_ms);
        if (!run(db, u, "repoint the idempotency key", error)) return false;
    }
    r.result = {InsertStatus::stored, std::move(id), {}};
    return true;
}

// insert_event_'s columns but seq and id (insert_event_row binds those).
bool SqliteStore::bind_event_columns(const NewEvent& e) {
    sqlite3_stmt* ins = insert_event_.get();
    return bind_text(ins, 3, e.source) && bind_text(ins, 4, e.type) &&
           bind_text(ins, 5, e.idempotency_key) &&
           sqlite3_bind_int64(ins, 6, e.received_at_ms) == SQLITE_OK && bind_blob(ins, 7, e.body);
}

// The event's own columns were bound by bind_event_columns; this adds seq and id.
bool SqliteStore::insert_event_row(int64_t seq, std::string_view preset_id, std::string& id,
                                   std::string& error) {
    sqlite3* db = wdb_.get();
    sqlite3_stmt* ins = insert_event_.get();
    sqlite3_bind_int64(ins, 1, seq);
    if (!preset_id.empty()) {
        id = preset_id;
        bind_text(ins, 2, id);
        const bool ok = sqlite3_step(ins) == SQLITE_DONE;
        if (!ok) error = describe(db, "insert the event " + id);
        sqlite3_reset(ins);
        return ok;
    }
    // An id can only be taken by another process's generator that drew the
    // same ms and start (two hosts on one file): draw the next one.
    for (int attempt = 0; attempt < 3; ++attempt) {
        id = ids_.next(now_ms());
        bind_text(ins, 2, id);
        int rc = sqlite3_step(ins);
        if (rc == SQLITE_DONE) {
            sqlite3_reset(ins);
            return true;
        }
        error = describe(db, "insert the event");
        sqlite3_reset(ins);
        if ((rc & 0xff) != SQLITE_CONSTRAINT) return false;
    }
    return false;
}

bool SqliteStore::insert_deliveries(const NewEvent& e, int64_t seq, std::string& error) {
    sqlite3* db = wdb_.get();
    sqlite3_stmt* s = insert_delivery_.get();
    for (const NewDelivery& d : e.deliveries) {
        sqlite3_bind_int64(s, 1, seq);
        bind_text(s, 2, d.plugin);
        sqlite3_bind_int64(s, 3, e.received_at_ms);
        bind_text(s, 4, d.order_key);
        if (!run(db, s, "insert a delivery", error)) return false;
        DeliveryRef ref;
        ref.id = sqlite3_last_insert_rowid(db);
        ref.event_seq = seq;
        ref.plugin = d.plugin;
        ref.due_ms = e.received_at_ms;
        ref.received_at_ms = e.received_at_ms;
        ref.age_from_ms = e.received_at_ms;
        ref.order_key = d.order_key;
        new_deliveries_.push_back(std::move(ref));
    }
    return true;
}

bool SqliteStore::apply_update(const DeliveryUpdate& u, std::string& error) {
    sqlite3* db = wdb_.get();
    sqlite3_stmt* s = update_delivery_.get();
    sqlite3_bind_int64(s, 1, u.delivery_id);
    sqlite3_bind_int(s, 2, static_cast<int>(u.state));
    sqlite3_bind_int64(s, 3, u.attempts);
    sqlite3_bind_int64(s, 4, u.due_ms);
    sqlite3_bind_int64(s, 5, u.finished_ms);
    bind_text(s, 6, u.last_error);
    bind_text(s, 7, owner_);
    if (!run(db, s, "record a delivery result", error)) return false;
    if (!u.attempt || sqlite3_changes(db) == 0) return true;
    const AttemptRecord& a = *u.attempt;
    sqlite3_stmt* h = insert_attempt_.get();
    sqlite3_bind_int64(h, 1, u.delivery_id);
    sqlite3_bind_int64(h, 2, a.attempt);
    sqlite3_bind_int64(h, 3, a.started_ms);
    sqlite3_bind_int64(h, 4, a.duration_us);
    bind_text(h, 5, a.outcome);
    bind_text(h, 6, a.reason);
    return run(db, h, "record an attempt", error);
}

void SqliteStore::rollback_if_open() {
    // Some failures (I/O error, disk full during COMMIT) already rolled the
    // transaction back; others (busy) leave it open.
    if (sqlite3_get_autocommit(wdb_.get())) return;
    std::string ignored;
    run(wdb_.get(), rollback_.get(), "rollback", ignored);
}

// Length-prefixed source, then the key: ("ab", "c") and ("a", "bc") differ.
// Called from the intake's threads and the writer: no shared scratch.
int64_t SqliteStore::dedup_hash_of(std::string_view source, std::string_view key) const {
    const size_t n = 8 + source.size() + key.size();
    unsigned char small[512];
    std::string big;
    unsigned char* buf = small;
    if (n > sizeof small) {
        big.resize(n);
        buf = reinterpret_cast<unsigned char*>(big.data());
    }
    store_le64(buf, source.size());
    std::memcpy(buf + 8, source.data(), source.size());
    std::memcpy(buf + 8 + source.size(), key.data(), key.size());
    return static_cast<int64_t>(siphash24(hash_k0_, hash_k1_, buf, n));
}

std::optional<InsertResult> SqliteStore::refused_by_journal_path(uint64_t bytes) {
    // What commit() refuses for the direct path, refused before the journal
    // acknowledges anything: a database file deleted or replaced under the
    // host, a filesystem short of room. The journal's record, then the WAL
    // and the database each take about the body's size: the look at the
    // free space is here, where the records are taken, not in the indexer
    // behind them.
    if (!file_in_place())
        return InsertResult{
            InsertStatus::unavailable,
            {},
            "the database file " + path_ + " was deleted or replaced while the host had it open"};
    if (std::string no_room = space_->check(3 * bytes); !no_room.empty())
        return InsertResult{InsertStatus::unavailable, {}, std::move(no_room)};
    return std::nullopt;
}

InsertResult SqliteStore::insert(const NewEvent& e) noexcept {
    if (!journal_) return gc_->insert(e);
    if (auto refused = refused_by_journal_path(e.body.size())) return std::move(*refused);
    return journal_->append(e);
}

void SqliteStore::insert_async(const NewEvent& e, InsertDone done) noexcept {
    if (!journal_) {
        gc_->insert_async(e, std::move(done));
    } else if (auto refused = refused_by_journal_path(e.body.size())) {
        done(std::move(*refused));
    } else {
        journal_->append_async(e, std::move(done));
    }
}

void SqliteStore::flush() {
    if (journal_ && !journal_->drain())
        throw std::runtime_error("flush " + path_ +
                                 ": the intake journal's records could not be indexed (the "
                                 "indexer failed, see the log, or 30 s passed); they stay in "
                                 "the journal");
    gc_->flush();
}

bool SqliteStore::index_journal_first(std::string_view event_id) {
    if (!journal_) return false;
    // Not held: unknown, or indexed since the tables were read (the indexer
    // lets go of a record only after its transaction committed), so the
    // tables are asked again either way. Held: once indexed.
    const std::optional<uint64_t> seq = journal_->seq_of(event_id);
    return !seq || journal_->drain_upto(*seq);
}

uint64_t SqliteStore::indexed_upto() {
    auto r = reader();
    sqlite3_stmt* s =
        r->stmt("SELECT CAST(value AS INTEGER) FROM store_meta WHERE name = 'journal_indexed'");
    return step(r.db(), s, "read the journal position")
               ? static_cast<uint64_t>(sqlite3_column_int64(s, 0))
               : 0;
}

void SqliteStore::load_stored_keys() {
    auto r = reader();
    sqlite3_stmt* n = r->stmt("SELECT count(*) FROM dedup");
    const int64_t count = step(r.db(), n, "count dedup records") ? sqlite3_column_int64(n, 0) : 0;
    sqlite3_reset(n);
    stored_keys_ = std::make_unique<journal::KeyFilter>(static_cast<size_t>(count) * 2 + 1'000'000);
    sqlite3_stmt* s = r->stmt("SELECT key_hash FROM dedup");
    while (step(r.db(), s, "read dedup records"))
        stored_keys_->add(static_cast<uint64_t>(sqlite3_column_int64(s, 0)));
}

std::optional<std::string> SqliteStore::find_stored(std::string_view source, std::string_view key,
                                                    uint64_t key_hash) {
    const auto hash = static_cast<int64_t>(key_hash);
    // Certainly never stored (or stored without a dedup record of its own,
    // which no lookup could find either): no database read.
    if (stored_keys_ && !stored_keys_->may_contain(static_cast<uint64_t>(hash)))
        return std::nullopt;
    auto r = reader();
    sqlite3_stmt* s = r->stmt(
        "SELECT e.id, e.source, e.idempotency_key FROM dedup d"
        " JOIN events e ON e.seq = d.event_seq WHERE d.key_hash = ?1");
    sqlite3_bind_int64(s, 1, hash);
    if (step(r.db(), s, "look up an idempotency key") && column_view(s, 1) == source &&
        column_view(s, 2) == key)
        return std::string(column_view(s, 0));
    return std::nullopt;
}

void SqliteStore::index(const std::vector<const journal::Record*>& records,
                        const std::vector<uint64_t>& hashes, uint64_t upto) {
    run_on_writer([&] {
        // Not synced at commit: the journal keeps the records in their
        // segments until sync_indexed(), so the intake's disk is spared an
        // fsync of several MB of WAL per batch.
        LazySync lazy(*this);
        index_on_writer(records, hashes, upto);
    });
}

// A commit with synchronous=FULL fsyncs the WAL, and with it every frame the
// lazy index transactions wrote before it; frames already copied and gone
// from a WAL that started over were synced into the database file by the
// checkpoint that copied them. SQLite's own sync, not ours: opening and
// closing the database file here would drop every POSIX lock the process
// holds on it (SQLite's "How To Corrupt An SQLite Database File", 2.2), and
// another process's connection could then delete the live WAL. The counter
// makes the commit write a frame (a row rewritten unchanged writes none).
void SqliteStore::sync_indexed() {
    if (!durable_) return;  // nothing is synced then; the segments go as before
    write_txn("sync the indexed journal records", [&](sqlite3* db) {
        // FULL, checked, not assumed: the whole point is the fsync.
        if (query_text(db, "PRAGMA synchronous") != "2")
            throw std::runtime_error("the writer is not at synchronous=FULL");
        exec(db,
             "INSERT INTO store_meta(name, value) VALUES('journal_index_syncs', 1)"
             " ON CONFLICT(name) DO UPDATE SET value = value + 1");
    });
}

// One transaction: the records (each decided as insert() decides it, with the
// id the journal gave it) and the journal position they reach.
void SqliteStore::index_on_writer(const std::vector<const journal::Record*>& records,
                                  const std::vector<uint64_t>& hashes, uint64_t upto) {
    sqlite3* db = wdb_.get();
    new_deliveries_.clear();
    std::string error;
    auto fail = [&]() {
        rollback_if_open();
        writable_.store(false, std::memory_order_relaxed);
        new_deliveries_.clear();
        return std::runtime_error(error);
    };
    if (!file_in_place())
        throw std::runtime_error("the database file " + path_ + " was deleted or replaced");
    if (!run(db, begin_.get(), "begin transaction", error)) throw fail();
    int64_t next_seq = 0;
    {
        sqlite3_stmt* s = max_seq_.get();
        const bool ok = sqlite3_step(s) == SQLITE_ROW;
        if (ok)
            next_seq = sqlite3_column_int64(s, 0);
        else
            error = describe(db, "read the last event seq");
        sqlite3_reset(s);
        if (!ok) throw fail();
    }
    space_->check();  // keeps the intake's refusal current; acknowledged records go in anyway
    size_t duplicates = 0;
    bool indexed = false;
    try {
        indexed = index_in_key_order(records, hashes, next_seq, duplicates, error);
    } catch (const std::exception& ex) {  // out of memory: rolled back like any failure
        error = ex.what();
    }
    if (!indexed) throw fail();
    {
        sqlite3_stmt* s = nullptr;
        if (sqlite3_prepare_v2(db,
                               "INSERT INTO store_meta(name, value) VALUES('journal_indexed', ?1)"
                               " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                               -1, &s, nullptr) != SQLITE_OK) {
            error = describe(db, "record the journal position");
            throw fail();
        }
        StmtPtr guard(s);
        sqlite3_bind_int64(s, 1, static_cast<int64_t>(upto));
        if (!run(db, s, "record the journal position", error)) throw fail();
    }
    if (!run(db, commit_.get(), "commit", error)) throw fail();
    writable_.store(true, std::memory_order_relaxed);
    if (duplicates > 0)
        std::fprintf(stderr, "journal: %zu indexed deliveries were already stored (kept once)\n",
                     duplicates);
    notify_committed(records.size(), new_deliveries_);
    new_deliveries_.clear();
}

// The records of one index transaction, decided as insert_one() decides
// them one after the other, with the dedup table visited in key order: the
// lookups first, sorted by hash; then the events, in journal order (their
// seqs follow arrival); then the dedup rows, sorted by hash. The keys are
// random, so in journal order each record touched a random page of the dedup
// table, and once SQLite's page cache (2 MiB) was full a page spilled to the
// WAL mid-transaction was written again each time a later key touched it. In
// key order each page is read and written once per transaction.
bool SqliteStore::index_in_key_order(const std::vector<const journal::Record*>& records,
                                     const std::vector<uint64_t>& hashes, int64_t& next_seq,
                                     size_t& duplicates, std::string& error) {
    sqlite3* db = wdb_.get();
    enum class Dedup : uint8_t { none, insert, repoint };
    struct Item {
        int64_t hash = 0;
        int64_t seq = 0;  // the event's, once inserted
        Dedup dedup = Dedup::none;
        bool duplicate = false;
    };
    const size_t n = records.size();
    std::vector<Item> items(n);
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) {
        // The journal's key_hash() of the record, which is dedup_hash_of().
        items[i].hash = static_cast<int64_t>(hashes[i]);
        // Before the commit, and so before the journal lets go of the record:
        // an intake that misses it in the journal's memory finds it here.
        if (stored_keys_) stored_keys_->add(static_cast<uint64_t>(items[i].hash));
        order[i] = i;
    }
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return items[a].hash != items[b].hash ? items[a].hash < items[b].hash : a < b;
    });

    // 1. Decide, one hash at a time (records sharing one, in journal order).
    // A record is a duplicate when the event its hash's dedup row leads to
    // has its source and key. With no such event (no row, or the row's event
    // deleted by retention) the first record takes the row, and the later
    // ones are matched against it. A row leading to another key's event (a
    // 64-bit collision) stays: the record is stored without a row of its own.
    sqlite3_stmt* f = find_dup_.get();
    for (size_t g = 0; g < n;) {
        const int64_t hash = items[order[g]].hash;
        size_t end = g;
        while (end < n && items[order[end]].hash == hash)
            ++end;
        bool row = false, owned = false;
        std::string owner_source, owner_key;
        {
            const ResetGuard reset{f};  // whatever happens below, even a throw
            sqlite3_bind_int64(f, 1, hash);
            const int rc = sqlite3_step(f);
            row = rc == SQLITE_ROW;
            if (!row && rc != SQLITE_DONE) {
                error = describe(db, "look up the earlier event");
                return false;
            }
            owned = row && sqlite3_column_type(f, 0) != SQLITE_NULL;
            if (owned) {
                owner_source = column_view(f, 1);
                owner_key = column_view(f, 2);
            }
        }
        for (size_t k = g; k < end; ++k) {
            Item& it = items[order[k]];
            const journal::Record& r = *records[order[k]];
            if (owned) {
                it.duplicate = owner_source == r.source && owner_key == r.key;
                continue;
            }
            it.dedup = row ? Dedup::repoint : Dedup::insert;
            owned = true;
            owner_source = r.source;
            owner_key = r.key;
        }
        g = end;
    }

    // 2. The events and their deliveries, in journal order.
    std::vector<NewDelivery> dels;
    for (size_t i = 0; i < n; ++i) {
        if (items[i].duplicate) {
            ++duplicates;
            continue;
        }
        const journal::Record& r = *records[i];
        dels.clear();
        for (const auto& d : r.deliveries)
            dels.push_back({d.plugin, d.order_key});
        const NewEvent e{r.source, r.type, r.key, r.body, r.received_at_ms, dels, r.id};
        if (!bind_event_columns(e)) {
            error = describe(db, "event refused by the store");
            return false;
        }
        items[i].seq = ++next_seq;
        std::string id;
        if (!insert_event_row(items[i].seq, r.id, id, error)) return false;
        if (!insert_deliveries(e, items[i].seq, error)) return false;
    }

    // 3. The dedup rows, in key order.
    for (size_t i : order) {
        const Item& it = items[i];
        if (it.dedup == Dedup::none) continue;
        sqlite3_stmt* s = it.dedup == Dedup::insert ? insert_dedup_.get() : repoint_dedup_.get();
        sqlite3_bind_int64(s, 1, it.hash);
        sqlite3_bind_int64(s, 2, it.seq);
        sqlite3_bind_int64(s, 3, records[i]->received_at_ms);
        if (!run(db, s,
                 it.dedup == Dedup::insert ? "record the idempotency key"
                                           : "repoint the idempotency key",
                 error))
            return false;
        // Step 1 found no row for an insert and none saw a row missing for
        // a repoint: anything else means the table changed under it.
        if (sqlite3_changes(db) != 1) {
            error = "the dedup table changed during an index transaction";
            return false;
        }
    }
    return true;
}

size_t SqliteStore::prune_dedup(std::chrono::system_clock::time_point older_than) {
    const int64_t cutoff =
        std::chrono::duration_cast<std::chrono::milliseconds>(older_than.time_since_epoch())
            .count();
    // Keys still in the intake journal are pruned too: indexed first (a
    // timeout leaves them for the next pass).
    if (journal_) journal_->drain();
    // One small transaction per chunk, each a separate job: inserts queued
    // meanwhile commit between chunks instead of waiting for the whole pass.
    size_t total = 0;
    int64_t from = std::numeric_limits<int64_t>::min();
    for (;;) {
        PruneStep step;
        run_on_writer([&] { step = prune_step(cutoff, from); });
        total += step.deleted;
        if (step.finished) return total;
        from = step.next_hash;
    }
}

SqliteStore::PruneStep SqliteStore::prune_step(int64_t cutoff_ms, int64_t from_hash) {
    LazySync lazy(*this);
    sqlite3* db = wdb_.get();
    std::string error;
    auto fail = [&] {
        rollback_if_open();
        writable_.store(false, std::memory_order_relaxed);
        return std::runtime_error("prune dedup records in " + path_ + ": " + error);
    };
    if (!run(db, begin_.get(), "begin transaction", error)) throw fail();
    // The pruner runs every second while the store is not writable: it is
    // also what notices that room came back when no delivery arrives.
    space_->check();

    std::vector<int64_t> victims;
    size_t scanned = 0;
    int64_t last = from_hash;
    {
        sqlite3_stmt* s = prune_scan_.get();
        sqlite3_bind_int64(s, 1, from_hash);
        sqlite3_bind_int64(s, 2, static_cast<int64_t>(tuning_.prune_chunk));
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            last = sqlite3_column_int64(s, 0);
            ++scanned;
            if (sqlite3_column_int64(s, 1) < cutoff_ms) victims.push_back(last);
        }
        if (rc != SQLITE_DONE) error = describe(db, "scan dedup records");
        sqlite3_reset(s);
        if (rc != SQLITE_DONE) throw fail();
    }
    for (int64_t h : victims) {
        sqlite3_bind_int64(prune_delete_.get(), 1, h);
        if (!run(db, prune_delete_.get(), "delete a dedup record", error)) throw fail();
    }
    if (!run(db, commit_.get(), "commit", error)) throw fail();
    writable_.store(true, std::memory_order_relaxed);

    PruneStep step;
    step.deleted = victims.size();
    step.finished = scanned < tuning_.prune_chunk || last == std::numeric_limits<int64_t>::max();
    step.next_hash = step.finished ? last : last + 1;
    return step;
}

uint64_t SqliteStore::event_count() {
    // Before the tables: see Journal::held_seqs.
    const std::vector<uint64_t> held = journal_ ? journal_->held_seqs() : std::vector<uint64_t>{};
    auto r = reader();
    ReadTxn txn(r.db());  // the count and the journal position from one snapshot
    sqlite3_stmt* s = r->stmt("SELECT count(*) FROM events");
    if (sqlite3_step(s) != SQLITE_ROW) {
        throw std::runtime_error(describe(r.db(), "count events in " + path_));
    }
    const auto in_tables = static_cast<uint64_t>(sqlite3_column_int64(s, 0));
    if (!journal_) return in_tables;
    sqlite3_reset(s);
    sqlite3_stmt* p =
        r->stmt("SELECT CAST(value AS INTEGER) FROM store_meta WHERE name = 'journal_indexed'");
    const uint64_t position =
        step(r.db(), p, "read the journal position") ? sqlite3_column_int64(p, 0) : 0;
    sqlite3_reset(p);
    return in_tables +
           static_cast<uint64_t>(held.end() - std::upper_bound(held.begin(), held.end(), position));
}

namespace {
StoredEvent read_event(sqlite3_stmt* s) {
    StoredEvent ev;
    ev.seq = sqlite3_column_int64(s, 0);
    ev.id = column_view(s, 1);
    ev.source = column_view(s, 2);
    ev.type = column_view(s, 3);
    ev.key = column_view(s, 4);
    ev.received_at_ms = sqlite3_column_int64(s, 5);
    ev.body = column_view(s, 6);
    return ev;
}
}  // namespace

std::optional<StoredEvent> SqliteStore::get(std::string_view id) {
    static const std::string sql = std::string(kEventColumns) + " WHERE id = ?1";
    // Acknowledged and still in the journal (asked first: a record leaves it
    // only once committed to the tables, so one of the two has it).
    if (journal_) {
        if (auto rec = journal_->find(id))
            return StoredEvent{0,        rec->id,   rec->source,        rec->type,
                               rec->key, rec->body, rec->received_at_ms};
    }
    auto r = reader();
    sqlite3_stmt* s = r->stmt(sql.c_str());
    bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) return std::nullopt;
    if (rc != SQLITE_ROW) throw std::runtime_error(describe(r.db(), "get event from " + path_));
    return read_event(s);
}

std::vector<StoredEvent> SqliteStore::events_by_seq(std::span<const int64_t> seqs) {
    static const std::string sql = std::string(kEventColumns) + " WHERE seq = ?1";
    std::vector<StoredEvent> out;
    out.reserve(seqs.size());
    auto r = reader();
    sqlite3_stmt* s = r->stmt(sql.c_str());
    ReadTxn txn(r.db());  // one snapshot for the lot
    for (int64_t seq : seqs) {
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 1, seq);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            out.push_back(read_event(s));
        } else if (rc != SQLITE_DONE) {
            throw std::runtime_error(describe(r.db(), "load events from " + path_));
        }
    }
    sqlite3_reset(s);
    return out;
}

}  // namespace clayhook

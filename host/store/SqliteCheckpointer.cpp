#include "store/SqliteCheckpointer.h"

#include <pthread.h>
#include <sqlite3.h>

#include <stdexcept>

namespace clayhook {

SqliteCheckpointer::SqliteCheckpointer(const std::string& path, bool durable, Limits limits,
                                       std::function<void(const std::string&)> warn)
    : limits_(limits), warn_(std::move(warn)), restart_at_(limits.restart_pages) {
    int rc =
        sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    auto fail = [&](const std::string& what) {
        std::string why = what + ": " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
        sqlite3_close_v2(db_);
        db_ = nullptr;
        return std::runtime_error("cannot open the checkpoint connection to " + path + ": " + why);
    };
    if (rc != SQLITE_OK) throw fail("open");
    sqlite3_extended_result_codes(db_, 1);
    // Never its own autocheckpoint: it commits nothing, but be explicit.
    sqlite3_wal_autocheckpoint(db_, 0);
    const char* sync = durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";
    if (sqlite3_exec(db_, sync, nullptr, nullptr, nullptr) != SQLITE_OK)
        throw fail("set synchronous");
    thread_ = std::thread([this] { run(); });
}

SqliteCheckpointer::~SqliteCheckpointer() {
    if (writer_) sqlite3_wal_hook(writer_, nullptr, nullptr);
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    sqlite3_close_v2(db_);
}

void SqliteCheckpointer::attach(sqlite3* writer) {
    writer_ = writer;
    // Replaces SQLite's autocheckpoint hook (sqlite3_wal_autocheckpoint is
    // itself a wal hook), so the writer's commits copy nothing.
    sqlite3_wal_hook(writer, &SqliteCheckpointer::on_commit, this);
}

// After every commit on the write connection, on its thread. `pages` is the
// WAL's frame count, which falls when the commit started the file over.
int SqliteCheckpointer::on_commit(void* self, sqlite3* db, const char* name, int pages) {
    auto* me = static_cast<SqliteCheckpointer*>(self);
    if (pages < me->base_) {  // started over
        me->base_ = 0;
        me->restart_at_ = me->limits_.restart_pages;
    }
    if (pages >= me->restart_at_) {
        // Past the bound. A RESTART here copies, on the writer, whatever the
        // passes have not: wait until a pass has left little (a pass asked
        // for now copies what the last one left, and the next commit after
        // it restarts), but not past a quarter bound more.
        const int behind = pages - me->copied_.load(std::memory_order_relaxed);
        const bool overdue = pages >= me->restart_at_ + me->limits_.restart_pages / 4;
        if (!overdue && me->running_.load(std::memory_order_relaxed)) return SQLITE_OK;
        if (!overdue && behind > me->limits_.trigger_pages / 4) {
            me->request();
            return SQLITE_OK;
        }
        int wal = 0, copied = 0;
        sqlite3_busy_timeout(db, 0);
        const int rc =
            sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_RESTART, &wal, &copied);
        sqlite3_busy_timeout(db, static_cast<int>(me->limits_.writer_busy_timeout.count()));
        me->base_ = pages;
        // Busy (a reader on an old snapshot, or a pass that began meanwhile):
        // again a trigger later, not at every commit, which would copy and
        // fsync on the writer each time.
        me->restart_at_ =
            rc == SQLITE_OK ? me->limits_.restart_pages : pages + me->limits_.trigger_pages;
        me->record(rc, db, true, wal, copied);
        return SQLITE_OK;
    }
    if (pages - me->base_ < me->limits_.trigger_pages) return SQLITE_OK;
    me->base_ = pages;
    me->request();
    return SQLITE_OK;
}

void SqliteCheckpointer::request() {
    {
        std::lock_guard lock(mu_);
        if (requested_) return;
        requested_ = true;
    }
    cv_.notify_one();
}

void SqliteCheckpointer::hold(bool held) {
    {
        std::lock_guard lock(mu_);
        held_ = held;
    }
    cv_.notify_all();
}

SqliteCheckpointer::Stats SqliteCheckpointer::stats() const {
    std::lock_guard lock(mu_);
    return stats_;
}

void SqliteCheckpointer::run() {
    // At most 15 characters, or the name is refused.
    pthread_setname_np(pthread_self(), "store-ckpt");  // for top -H, perf and gdb
    std::unique_lock lock(mu_);
    for (;;) {
        cv_.wait(lock, [&] { return stopping_ || (requested_ && !held_); });
        if (stopping_) return;
        requested_ = false;
        running_.store(true, std::memory_order_relaxed);
        lock.unlock();
        int wal = 0, copied = 0;
        const int rc =
            sqlite3_wal_checkpoint_v2(db_, "main", SQLITE_CHECKPOINT_PASSIVE, &wal, &copied);
        record(rc, db_, false, wal, copied);
        lock.lock();
        running_.store(false, std::memory_order_relaxed);
    }
}

void SqliteCheckpointer::record(int rc, sqlite3* db, bool restart, int wal, int copied) {
    std::string error;
    // Busy is not a failure: a RESTART that found a reader on an old
    // snapshot or a pass in progress (it never waits), a passive pass beside
    // another checkpointer (sqlite3 on the file). A later commit asks again.
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY) error = sqlite3_errmsg(db);
    std::lock_guard lock(mu_);
    ++(restart ? stats_.restarts : stats_.passes);
    if (!error.empty()) ++stats_.failures;
    stats_.wal_pages = wal;
    stats_.copied_pages = copied;
    copied_.store(copied, std::memory_order_relaxed);
    if (!error.empty() && error != last_error_ && warn_)
        warn_("store checkpoint failed (the WAL grows until one succeeds): " + error);
    last_error_ = error;
}

}  // namespace clayhook

#pragma once

// Keeps SQLite's WAL checkpoints off the write connection.
//
// By default SQLite checkpoints inside the COMMIT that takes the WAL past
// 1000 pages: that commit copies the pages into the database file and fsyncs
// it, 5-25 ms on this project's machines, while every insert queued behind it
// waits. That was the intake's p99 (bench/README.md). Here the write
// connection's commits only note the WAL's size; past `trigger_pages` they
// wake this unit's thread, which checkpoints on a connection of its own.
// PASSIVE checkpoints run beside the writer (SQLite's WAL allows one writer
// and one checkpointer at once), so a commit never waits for one.
//
// A passive pass copies what was committed when it began. The writer starts
// the WAL file over only when it finds it wholly copied, which under unbroken
// load (a commit always running beside the pass) may never happen. So the
// commit that takes the WAL to `restart_pages` checkpoints itself, RESTART
// mode, on the writer, right after a pass that left little to copy: it copies
// the rest and the next commit starts the file over. One short pause per
// `restart_pages` of WAL, instead of a long one per `trigger_pages`. It never
// waits (busy timeout 0): a reader still on an old snapshot (a backup, a long
// admin query) keeps the WAL from starting over, and the RESTART then copies
// what it can up to that snapshot, as a passive pass would, and returns busy;
// the commit `trigger_pages` later tries again. While such a reader stays,
// the WAL grows past the bound, as it does with SQLite's own checkpoints.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

struct sqlite3;

namespace clayhook {

class SqliteCheckpointer {
  public:
    struct Limits {
        int trigger_pages = 1000;   // SQLite's own autocheckpoint default
        int restart_pages = 16384;  // 64 MiB of 4 KiB pages (store's journal_size_limit)
        // The write connection's own busy timeout, put back after the RESTART
        // (which runs with none, so as never to wait).
        std::chrono::milliseconds writer_busy_timeout{5000};
    };
    struct Stats {
        uint64_t passes = 0;    // passive checkpoints run by the thread
        uint64_t restarts = 0;  // RESTART checkpoints run by the writer's commits
        uint64_t failures = 0;  // passes that returned an error other than busy
        int wal_pages = 0;      // WAL frames after the last checkpoint
        int copied_pages = 0;   // of which copied into the database file
    };

    // Opens its own connection to `path` (a WAL database the caller already
    // opened and set up), with `synchronous` FULL when `durable`, NORMAL
    // otherwise (in WAL mode both fsync the WAL before a checkpoint copies,
    // and the database file after one that copied everything), and starts
    // the thread ("store-ckpt"). `warn`
    // (may be empty) hears a failing pass, once per distinct message. Throws
    // std::runtime_error when the connection cannot be opened.
    SqliteCheckpointer(const std::string& path, bool durable, Limits limits,
                       std::function<void(const std::string&)> warn);
    // Detaches from the writer (see attach), stops the thread and closes the
    // connection. The caller must not be committing on the writer meanwhile.
    ~SqliteCheckpointer();
    SqliteCheckpointer(const SqliteCheckpointer&) = delete;
    SqliteCheckpointer& operator=(const SqliteCheckpointer&) = delete;

    // Replaces the write connection's automatic checkpoints by wake-ups of
    // this thread (and the RESTART at the bound). Call on the thread that owns `writer`, before it
    // commits concurrently with anything.
    void attach(sqlite3* writer);

    // Test hook: while held, no pass runs; requests wait for the release.
    void hold(bool held);
    Stats stats() const;

  private:
    static int on_commit(void* self, sqlite3* db, const char* name, int pages);
    void request();
    void run();
    void record(int rc, sqlite3* db, bool restart, int wal, int copied);

    Limits limits_;
    std::function<void(const std::string&)> warn_;
    sqlite3* db_ = nullptr;      // ours; used only by the thread after construction
    sqlite3* writer_ = nullptr;  // attached write connection
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool requested_ = false;
    bool held_ = false;
    bool stopping_ = false;
    int base_ = 0;                      // the writer's thread only: WAL frames at the last request
    int restart_at_ = 0;                // the writer's thread only: WAL frames for the next RESTART
    std::atomic<bool> running_{false};  // a pass in progress
    std::atomic<int> copied_{0};        // frames in the database file after the last pass
    Stats stats_;
    std::string last_error_;
    std::thread thread_;
};

}  // namespace clayhook

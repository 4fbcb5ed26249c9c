// WAL checkpoints off the writer (SqliteCheckpointer), on a real SQLite store
// in a fresh temp folder: the writer's commits never copy the WAL into the
// database file (SQLite's default does, in the commit that passes 1000
// pages), a pass on the checkpointer's thread does, and the WAL stays bounded
// when no pass runs.
#include "store/SqliteStore.h"
#include "support/TempDir.h"
#include "support/Wait.h"

#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

using namespace clayhook;
using namespace std::chrono_literals;

namespace {

constexpr uintmax_t kFrame = 24 + 4096;  // WAL frame header + the default page

uintmax_t size_of(const std::string& path) {
    std::error_code ec;
    auto n = std::filesystem::file_size(path, ec);
    return ec ? 0 : n;
}

// WAL frames the file holds (its high-water mark, not the live count).
uintmax_t wal_frames(const std::string& db) {
    uintmax_t n = size_of(db + "-wal");
    return n > 32 ? (n - 32) / kFrame : 0;
}

void insert_events(SqliteStore& store, int from, int count) {
    const std::string body =
        R"({"event":"enrichment.completed","pad":")" + std::string(3000, 'x') + "\"}";
    for (int i = from; i < from + count; ++i) {
        const std::string key = "row-" + std::to_string(i);  // NewEvent holds views
        NewEvent e{"clay", "enrichment.completed", key, body, 1};
        REQUIRE(store.insert(e).status == InsertStatus::stored);
    }
}

// The live WAL, as a passive checkpoint on a connection of our own sees it:
// frames in the log, and of them copied into the database file.
std::pair<int, int> live_wal(const std::string& path) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
    // A first read opens the WAL; before it the connection does not know it
    // has one (the checkpoint would report -1).
    REQUIRE(sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr) ==
            SQLITE_OK);
    int log = -1, copied = -1;
    int rc = sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    sqlite3_close(db);
    REQUIRE(rc == SQLITE_OK);
    return {log, copied};
}

// Events in the database file itself, the WAL ignored (immutable=1): what the
// checkpoints have copied.
int64_t events_in_file(const std::string& path) {
    sqlite3* db = nullptr;
    const std::string uri = "file:" + path + "?immutable=1";
    REQUIRE(sqlite3_open_v2(uri.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr) ==
            SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

// A store without an fsync per commit: the same checkpoints, faster.
// The writer's own commits (the direct path), whose WAL the checkpointer copies.
StoreConfig config_in(const test::TempDir& dir) {
    StoreConfig c;
    c.path = dir.file("clayhook.db");
    c.durable = false;
    c.journal = false;
    return c;
}

// A pass per 100 pages, the RESTART at 400.
SqliteStore::Tuning small_bound() {
    SqliteStore::Tuning t;
    t.checkpoint_pages = 100;
    t.checkpoint_restart_pages = 400;
    return t;
}

}  // namespace

TEST_CASE("checkpointer: the writer's commits never copy the WAL, a pass on its thread does",
          "[store][checkpointer]") {
    test::TempDir dir;
    const StoreConfig c = config_in(dir);
    SqliteStore store(c, 64);
    store.checkpointer().hold(true);
    const uintmax_t db_before = size_of(c.path);

    // Past SQLite's own autocheckpoint (1000 pages): before the checkpointer,
    // the commit crossing it copied the WAL into the file right there.
    int n = 0;
    while (wal_frames(c.path) < 1300) {
        insert_events(store, n, 50);
        n += 50;
        REQUIRE(n < 20000);
    }
    CHECK(size_of(c.path) == db_before);
    CHECK(events_in_file(c.path) <= 0);  // no table yet in the file, or none of them
    CHECK(store.checkpointer().stats().passes == 0);
    CHECK(store.checkpointer().stats().restarts == 0);

    store.checkpointer().hold(false);  // the requests made while held now run
    REQUIRE(test::wait_until([&] {
        auto s = store.checkpointer().stats();
        return s.passes >= 1 && s.wal_pages > 0 && s.copied_pages == s.wal_pages;
    }));
    CHECK(size_of(c.path) > db_before);
    CHECK(events_in_file(c.path) == n);
    CHECK(store.checkpointer().stats().failures == 0);

    // Everything was copied, so the next commit starts the WAL file over.
    insert_events(store, n, 1);
    auto [log, copied] = live_wal(c.path);
    CHECK(log >= 1);
    CHECK(log < 20);
    CHECK(store.event_count() == static_cast<uint64_t>(n + 1));
}

TEST_CASE("checkpointer: its thread is named, for top -H and perf", "[store][checkpointer]") {
    test::TempDir dir;
    StoreConfig c;
    c.path = dir.file("clayhook.db");
    SqliteStore store(c, 64);
    auto named = [] {
        std::error_code ec;
        for (const auto& t : std::filesystem::directory_iterator("/proc/self/task", ec)) {
            std::ifstream in(t.path() / "comm");
            std::string comm;
            std::getline(in, comm);
            if (comm == "store-ckpt") return true;
        }
        return false;
    };
    CHECK(test::wait_until(named, 10s));
}

TEST_CASE("checkpointer: with no pass running, the writer restarts the WAL at the bound",
          "[store][checkpointer]") {
    test::TempDir dir;
    const StoreConfig c = config_in(dir);
    SqliteStore store(c, 64, small_bound());
    store.checkpointer().hold(true);  // a checkpointer that never gets to run

    insert_events(store, 0, 2500);  // a page or more each: over 2500 frames in all
    auto s = store.checkpointer().stats();
    CHECK(s.passes == 0);
    CHECK(s.restarts >= 4);
    CHECK(s.failures == 0);
    // The bound, a quarter more while waiting for a pass that never comes,
    // and the commit that crossed it.
    CHECK(wal_frames(c.path) <= 400 + 100 + 50);
    CHECK(store.event_count() == 2500u);
    CHECK(events_in_file(c.path) > 2000);  // copied by the RESTARTs
}

TEST_CASE("checkpointer: a reader on an old snapshot never makes the writer wait",
          "[store][checkpointer]") {
    test::TempDir dir;
    const StoreConfig c = config_in(dir);
    SqliteStore::Tuning t = small_bound();
    t.busy_timeout = 60s;  // were the RESTART to wait like a commit, this test would hang
    SqliteStore store(c, 64, t);
    store.checkpointer().hold(true);
    insert_events(store, 0, 10);

    // A read transaction that stays open keeps the WAL from starting over.
    sqlite3* reader = nullptr;
    REQUIRE(sqlite3_open_v2(c.path.c_str(), &reader, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM events;", nullptr, nullptr,
                         nullptr) == SQLITE_OK);

    const auto start = std::chrono::steady_clock::now();
    insert_events(store, 10, 1000);
    const auto took = std::chrono::steady_clock::now() - start;
    auto s = store.checkpointer().stats();
    CHECK(s.restarts >= 1);  // tried, and got busy at once
    CHECK(wal_frames(c.path) > 1000);
    // 1000 inserts without fsync take well under a second here; one RESTART
    // waiting out the busy timeout would take a minute.
    CHECK(took < 30s);

    sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_close(reader);
    // With the reader gone, the next attempt (a trigger later) succeeds and
    // the WAL starts over.
    const uint64_t restarts = s.restarts;
    int n = 1010;
    REQUIRE(test::wait_until([&] {
        insert_events(store, n, 20);
        n += 20;
        auto [log, copied] = live_wal(c.path);
        return store.checkpointer().stats().restarts > restarts && log < 400;
    }));
    CHECK(store.checkpointer().stats().failures == 0);
}

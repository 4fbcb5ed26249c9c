// The background pruner, against a real SQLite store: it forgets old keys,
// and it notices when a store that failed a commit can write again.
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "store/DedupPruner.h"
#include "store/SqliteStore.h"
#include "support/TempDir.h"
#include "support/Wait.h"

#include <sqlite3.h>

#include <catch2/catch.hpp>

#include <sstream>

using namespace clayhook;
using namespace std::chrono_literals;

namespace {

NewEvent event(std::string_view key, int64_t at_ms) {
    NewEvent e;
    e.source = "clay";
    e.type = "enrichment.completed";
    e.idempotency_key = key;
    e.body = "{}";
    e.received_at_ms = at_ms;
    return e;
}

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

TEST_CASE("the pruner forgets keys past the retention window at start", "[store][pruner]") {
    test::TempDir dir;
    StoreConfig c;
    c.path = dir.file("db");
    SqliteStore store(c, 16);
    REQUIRE(store.insert(event("old", now_ms() - 3'600'000)).status == InsertStatus::stored);
    REQUIRE(store.insert(event("new", now_ms())).status == InsertStatus::stored);
    std::ostringstream out;
    Logger log(out, Level::info);
    Metrics metrics;
    {
        DedupPruner pruner(store, std::chrono::minutes(10), std::chrono::hours(1), log, metrics);
        REQUIRE(test::wait_until(
            [&] { return metrics.value("clayhook_store_dedup_pruned_total", "") >= 1; }, 15s));
    }
    CHECK(store.insert(event("old", now_ms())).status == InsertStatus::stored);
    CHECK(store.insert(event("new", now_ms())).status == InsertStatus::duplicate);
}

TEST_CASE("the pruner brings an unwritable store back without any delivery", "[store][pruner]") {
    test::TempDir dir;
    StoreConfig c;
    c.path = dir.file("db");
    c.journal = false;  // the writer's own commit is what fails below
    SqliteStore::Tuning tuning;
    tuning.busy_timeout = 50ms;
    SqliteStore store(c, 16, tuning);
    std::ostringstream out;
    Logger log(out, Level::info);
    Metrics metrics;
    // An hour between passes: only the unwritable-store retry can be what
    // brings it back within the test's bound.
    DedupPruner pruner(store, std::chrono::hours(24), std::chrono::hours(1), log, metrics);

    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(c.path.c_str(), &other) == SQLITE_OK);
    // The pruner's first pass may hold the write lock for a moment: wait for it.
    sqlite3_busy_timeout(other, 5000);
    REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    CHECK(store.insert(event("k", now_ms())).status == InsertStatus::unavailable);
    CHECK_FALSE(store.writable());
    REQUIRE(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(other);

    CHECK(test::wait_until([&] { return store.writable(); }, 15s));
}

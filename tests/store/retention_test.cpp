// store.retention in a running host: finished events go after the bound, dead
// ones after the longer one, pending ones never; the rows deleted and the
// oldest pending delivery are on /metrics.
#include "clay/ClayApi.h"
#include "support/HostProcess.h"
#include "support/SignedPost.h"
#include "support/TestPaths.h"
#include "support/Wait.h"

#include <sqlite3.h>

#include <catch2/catch.hpp>

#include <string>

using namespace clayhook;
using namespace clayhook::test;
using namespace std::chrono_literals;

namespace {

const char* kSecret = "retention-secret";

// The value of one sample on /metrics (-1 when absent).
double sample(const std::string& metrics, const std::string& series) {
    const std::string at = "\n" + series + " ";
    size_t p = metrics.find(at);
    if (p == std::string::npos) return -1;
    return std::stod(metrics.substr(p + at.size()));
}

// Events in the store, read beside the running host (WAL allows it).
int64_t events_in(const std::string& db) {
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(h, "SELECT count(*) FROM events", -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    const int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(h);
    return n;
}

}  // namespace

TEST_CASE("retention: a running host deletes done events, dead ones later, pending never",
          "[store][retention]") {
    HostProcess h;
    const std::string db = h.dir.file("var/clayhook.db");
    h.options.env["RET_SECRET"] = kSecret;
    // `sink` takes every event; `full` (writing to /dev/full: every call
    // fails) takes enrichment.failed, and one attempt makes it dead;
    // `paused` never runs: table.row.created stays pending.
    h.write_config(R"(admin: {enabled: false}
listener: {address: 127.0.0.1, port: 0}
store: {path: )" + db +
                   R"(, retention: 2s, dedup_retention: 1s, dead_retention: 5s}
dispatch: {retry: {max_attempts: 1}}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["${RET_SECRET}"]}
plugins:
  - name: sink
    library: bundled:jsonl-sink
    events: [enrichment.completed, enrichment.failed]
    config: {path: )" +
                   h.dir.file("var/events.jsonl") + R"(}
  - name: full
    library: bundled:jsonl-sink
    events: [enrichment.failed]
    config: {path: /dev/full}
  - name: waiting
    library: )" + std::string(kFixturePluginDir) +
                   R"(/no-such.so
    events: [table.row.created]
)");
    h.start();
    auto post = [&](const std::string& event, const std::string& row) {
        return signed_post(h.port(), kSecret,
                           R"({"event":")" + event + R"(","row_id":")" + row +
                               R"(","timestamp":"2026-12-05T12:00:00.000Z"})")
            .status;
    };
    for (int i = 0; i < 5; ++i)
        REQUIRE(post("enrichment.completed", "done-" + std::to_string(i)) == 200);
    REQUIRE(post("enrichment.failed", "dead") == 200);
    REQUIRE(post("table.row.created", "pending") == 200);
    // In the tables once the journal's indexer took them (milliseconds).
    REQUIRE(wait_until([&] { return events_in(db) == 7; }, 10s));

    auto metrics = [&] { return http_exchange("GET", h.url("/metrics"), {}, "", 10s).body; };
    auto deleted = [&](const char* table) {
        return sample(metrics(), std::string("clayhook_store_retention_deleted_total{table=\"") +
                                     table + "\"}");
    };
    // The five done ones go after 2 s (a pass runs every second).
    REQUIRE(wait_until([&] { return deleted("events") >= 5; }, 20s));
    CHECK(events_in(db) == 2);
    CHECK(deleted("deliveries") >= 5);
    CHECK(h.wait_for_output("old events deleted (store.retention)", 10s));
    // The dead one after 5 s, with its two deliveries and its attempt.
    REQUIRE(wait_until([&] { return deleted("events") >= 6; }, 20s));
    CHECK(events_in(db) == 1);
    CHECK(deleted("events") == 6);
    CHECK(deleted("deliveries") == 7);
    CHECK(deleted("attempts") >= 1);
    // The pending one stays, and its age shows.
    const double age = sample(metrics(), "clayhook_delivery_oldest_pending_age_seconds");
    CHECK(age >= 5);
    CHECK(age < 120);
    CHECK(h.stop() == 0);
}

// A full disk under a running host, on a genuinely small filesystem (a tmpfs
// of a few MiB mounted by the test under its own folder): the intake answers
// 503 with Retry-After and /readyz turns not ready, nothing acknowledged is
// lost, the plugins' results keep committing, and when room comes back the
// host accepts again by itself.
//
// Mounting needs CAP_SYS_ADMIN (root, as CI runs): without it the test fails
// and says so; it never passes without having filled a disk.
#include "clay/ClayApi.h"
#include "support/HostProcess.h"
#include "support/SmallFilesystem.h"
#include "support/TestPaths.h"
#include "support/Wait.h"
#include "verify/Verifier.h"

#include <sqlite3.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace clayhook;
using namespace clayhook::test;
using namespace std::chrono_literals;

namespace {

const char* kSecret = "full-disk-secret";

HttpResponse post(uint16_t port, const std::string& row, const std::string& pad) {
    const std::string body = R"({"event":"enrichment.completed","row_id":")" + row +
                             R"(","timestamp":"2026-12-05T12:00:00.000Z","pad":")" + pad + "\"}";
    return http_exchange("POST", "http://127.0.0.1:" + std::to_string(port) + "/webhooks/clay",
                         {{"x-clay-signature", hmac_sha256_hex(kSecret, body)},
                          {"content-type", "application/json"}},
                         body, 30s);
}

// The event ids the sink wrote, each line once.
std::vector<std::string> sink_ids(const std::string& path) {
    std::vector<std::string> ids;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        const size_t p = line.find("\"id\":\"");
        if (p != std::string::npos) ids.push_back(line.substr(p + 6, 27));
    }
    return ids;
}

int64_t count(const std::string& db, const char* sql) {
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(h, sql, -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    const int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(h);
    return n;
}

// Fills the store's filesystem through the intake until it answers 503, then
// frees room and waits for the host to accept again. `min_free_space` 0
// lets SQLite itself run into ENOSPC: then the plugins' claims and results
// cannot commit either, and the deliveries wait for the room.
void fill_and_recover(const std::string& min_free_space, const std::string& refusal,
                      bool results_while_full, bool journal) {
    HostProcess h;
    const std::string var = h.dir.file("var");
    SmallFilesystem fs(var, "6m");
    const std::string db = var + "/clayhook.db", sink = h.dir.file("events.jsonl");
    // What takes the room: freed later, as an operator would.
    const std::string filler = var + "/filler";
    std::ofstream(filler) << std::string(2 * 1024 * 1024, 'f');
    h.options.env["FULL_SECRET"] = kSecret;
    h.write_config(R"(admin: {enabled: false}
listener: {address: 127.0.0.1, port: 0}
store: {path: )" + db +
                   ", min_free_space: " + min_free_space +
                   ", journal: " + (journal ? "true" : "false") + R"(}
sources:
  - name: clay
    path: /webhooks/clay
    max_body_bytes: 64KiB
    verify: {scheme: hmac-sha256, secrets: ["${FULL_SECRET}"]}
plugins:
  - name: sink
    library: bundled:jsonl-sink
    config: {path: )" +
                   sink + R"(}
)");
    h.start();

    const std::string pad(16 * 1024, 'p');
    std::set<std::string> acknowledged;
    HttpResponse refused;
    std::string refused_row;
    for (int i = 0; i < 2000 && refused.status == 0; ++i) {
        const std::string row = "row-" + std::to_string(i);
        HttpResponse r = post(h.port(), row, pad);
        if (r.status == 200) {
            acknowledged.insert(row);
        } else {
            refused = r;
            refused_row = row;
        }
    }
    INFO("acknowledged before the disk filled: " << acknowledged.size());
    INFO("host log (tail): " << h.err().substr(h.err().size() > 3000 ? h.err().size() - 3000 : 0));
    REQUIRE(refused.status == 503);
    REQUIRE(acknowledged.size() >= 10);
    REQUIRE(refused.header("Retry-After") != nullptr);
    CHECK(*refused.header("Retry-After") == "1");
    CHECK(h.wait_for_output(refusal, 10s));
    // With the reserve, not ready until there is room. Without it, /readyz
    // follows the last commit, and a small one (a plugin's result, a dedup
    // pruning step) can still fit on a disk too full for a delivery: there
    // it may say ready while deliveries get 503 (ASan's CI run saw it).
    if (results_while_full)
        CHECK(http_exchange("GET", h.url("/readyz"), {}, "", 10s).status == 503);
    // Still refused a moment later (a sender's retry); with the reserve,
    // every acknowledged event reaches the plugin meanwhile.
    CHECK(post(h.port(), refused_row, pad).status == 503);
    if (results_while_full)
        REQUIRE(wait_until([&] { return sink_ids(sink).size() >= acknowledged.size(); }, 30s));

    // Room again: the host accepts by itself, the refused delivery first
    // (its sender retries it), and /readyz follows.
    std::filesystem::remove(filler);
    REQUIRE(wait_until([&] { return post(h.port(), refused_row, pad).status == 200; }, 30s));
    acknowledged.insert(refused_row);
    REQUIRE(wait_until(
        [&] { return http_exchange("GET", h.url("/readyz"), {}, "", 10s).status == 200; }, 30s));
    REQUIRE(post(h.port(), "after", pad).status == 200);
    acknowledged.insert("after");

    REQUIRE(wait_until([&] { return sink_ids(sink).size() >= acknowledged.size(); }, 30s));
    const auto ids = sink_ids(sink);
    CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == acknowledged.size());
    CHECK(h.stop() == 0);
    CHECK(count(db, "SELECT count(*) FROM events") == static_cast<int64_t>(acknowledged.size()));
    CHECK(count(db, "SELECT count(*) FROM deliveries WHERE state = 0") == 0);
}

}  // namespace

TEST_CASE("full disk: below min_free_space new deliveries get 503 and results still commit",
          "[store][full-disk]") {
    const bool journal = GENERATE(true, false);
    INFO("store.journal: " << journal);
    fill_and_recover("2MiB", "below store.min_free_space", true, journal);
}

TEST_CASE(
    "full disk: with no reserve, out of space gives 503, loses nothing, and recovers by itself",
    "[store][full-disk]") {
    const bool journal = GENERATE(true, false);
    INFO("store.journal: " << journal);
    fill_and_recover(
        "0", journal ? "the intake journal could not be written" : "database or disk is full",
        false, journal);
}

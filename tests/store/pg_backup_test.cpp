// The PostgreSQL backup and restore of docs/operations.md ("Backups"), done
// for real: `pg_dump --format=custom` of the database of a running host,
// `pg_restore --no-owner` into a new empty database, a host started on it.
// The restored host has every acknowledged event (a sender's retry of one is
// a duplicate with the same id), the paused flag, the deliveries that were
// pending at the dump (they run once the plugin is resumed, the finished ones
// never again), and its identity sequences: a new event is stored after the
// old ones.
#include "clay/ClayApi.h"
#include "support/HostProcess.h"
#include "support/PgServer.h"
#include "support/ProbeLog.h"
#include "support/SignedPost.h"
#include "support/Subprocess.h"
#include "support/TestPaths.h"
#include "support/Wait.h"

#include <clayhook/json.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace clayhook;
using namespace clayhook::test;
using namespace std::chrono_literals;

namespace {

const char* kSecret = "pg-backup-secret";
const char* kToken = "pg-backup-admin-token";

struct Host : HostProcess {
    std::string probe_log = dir.file("probe.jsonl");

    explicit Host(const std::string& url) {
        options.env["PGB_SECRET"] = kSecret;
        options.env["PGB_TOKEN"] = kToken;
        options.env["PGB_PG_URL"] = url;
        write_config(R"(admin: {enabled: true, address: 127.0.0.1, port: 0, token: "${PGB_TOKEN}"}
listener: {address: 127.0.0.1, port: 0}
store: {engine: postgres, postgres_url: "${PGB_PG_URL}", host_id: pg-backup-host}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["${PGB_SECRET}"]}
dispatch: {workers: 2, poll_interval: 200ms}
plugins:
  - name: probe
    library: )" + std::string(kFixturePluginDir) +
                     R"(/probe.so
    config: {log: )" +
                     probe_log + R"(}
)");
    }

    // The same row always makes the same body, so a second post of it is a
    // sender's retry.
    SignedReply post(const std::string& row, const std::string& probe = "{}") const {
        return signed_post(port(), kSecret,
                           R"({"event":"enrichment.completed","row_id":")" + row +
                               R"(","timestamp":"2026-12-05T12:00:42.042Z","probe":)" + probe +
                               "}");
    }

    HttpResponse admin(const std::string& method, const std::string& path) const {
        return http_exchange(method, "http://127.0.0.1:" + std::to_string(admin_port()) + path,
                             {{"Authorization", std::string("Bearer ") + kToken}}, "", 10s);
    }

    // The value of a series of /metrics, -1 when absent.
    double metric(const std::string& series) const {
        auto r = http_exchange("GET", url("/metrics"), {}, "", 10s);
        std::istringstream in(r.body);
        std::string line;
        while (std::getline(in, line))
            if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
        return -1;
    }

    std::map<std::string, int> handled() const { return probe_handlings(probe_log); }
};

// What must come back whole: the rows of every table (by state for the
// deliveries), and where each identity sequence stands.
std::string census(PgServer& server, const std::string& url) {
    std::string out;
    for (const char* table :
         {"clayhook_schema", "events", "dedup", "deliveries", "attempts", "kv", "plugin_state"})
        out += std::string(table) + "=" +
               server.query(url, std::string("SELECT count(*) FROM ") + table) + "\n";
    out += "deliveries by state:\n" +
           server.query(url, "SELECT state, count(*) FROM deliveries GROUP BY 1 ORDER BY 1") +
           "\nsequences:\n" +
           server.query(url,
                        "SELECT sequencename, last_value FROM pg_sequences "
                        "WHERE schemaname = 'public' ORDER BY 1") +
           "\n";
    return out;
}

// pg_dump / pg_restore of the same PostgreSQL as the test server (Debian's
// /usr/lib/postgresql/<N>/bin). Missing is a failure, never a skip.
std::string pg_tool(const std::string& name) {
    const std::string bin = detail::find_pg_bin_dir() + "/" + name;
    INFO(bin << ": install Debian's postgresql-client package");
    REQUIRE(::access(bin.c_str(), X_OK) == 0);
    return bin;
}

}  // namespace

TEST_CASE(
    "pg backup: pg_dump of a running host's database, pg_restore into an empty one, a host "
    "started on it has every event, the pending deliveries and working sequences",
    "[store][pg][pg-backup]") {
    PgServer& server = shared_pg_server();
    const std::string pg_dump = pg_tool("pg_dump"), pg_restore = pg_tool("pg_restore");
    const std::string source = server.create_database();

    Host a(source);
    a.start();
    // Handled before the dump: done, and one dead (the probe says fail).
    std::vector<std::string> done_ids;
    for (int i = 0; i < 10; ++i) {
        auto r = a.post("done_" + std::to_string(i));
        REQUIRE(r.status == 200);
        done_ids.push_back(r.id);
    }
    auto failed = a.post("dead_0", R"({"fail":true})");
    REQUIRE(failed.status == 200);
    // Recorded in the database, not only handed over (the probe writes its
    // line before the host commits the outcome).
    std::string states;
    const bool finished = wait_until(
        [&] {
            states = server.query(source,
                                  "SELECT state, count(*) FROM deliveries GROUP BY 1 ORDER BY 1");
            return states == "1|10\n2|1";
        },
        30s);
    INFO("deliveries by state: " << states << "\nhost log:\n" << a.err());
    REQUIRE(finished);
    // Pending at the dump: the plugin paused (a stored flag), then more events.
    REQUIRE(a.admin("POST", "/admin/plugins/probe/pause").status == 200);
    std::vector<std::string> pending_ids;
    for (int i = 0; i < 10; ++i) {
        auto r = a.post("pending_" + std::to_string(i));
        REQUIRE(r.status == 200);
        pending_ids.push_back(r.id);
    }
    const size_t acknowledged = done_ids.size() + 1 + pending_ids.size();
    REQUIRE(server.query(source, "SELECT count(*) FROM deliveries WHERE state = 0") == "10");
    REQUIRE(server.query(source, "SELECT count(*) FROM events") == std::to_string(acknowledged));

    // The dump, while the host runs (connected, polling every 200 ms).
    const std::string dump = a.dir.file("clayhook.dump");
    auto dumped = run({pg_dump, "--format=custom", "--file=" + dump, source}, {}, 120s);
    INFO("pg_dump: exit " << dumped.code << "\n" << dumped.out << dumped.err);
    REQUIRE(dumped.code == 0);
    CHECK(dumped.err.empty());
    REQUIRE(std::filesystem::file_size(dump) > 0);
    CHECK(a.stop() == 0);
    const std::string before = census(server, source);

    // The restore, into a new empty database.
    const std::string restored = server.create_database();
    auto put_back =
        run({pg_restore, "--no-owner", "--exit-on-error", "--dbname=" + restored, dump}, {}, 120s);
    INFO("pg_restore: exit " << put_back.code << "\n" << put_back.out << put_back.err);
    REQUIRE(put_back.code == 0);
    CHECK(put_back.err.empty());
    CHECK(census(server, restored) == before);

    Host b(restored);
    b.start();
    // No migration ran: the schema came back with the data, its versions
    // recorded by the host that made them.
    const std::string versions = "SELECT version, applied_by FROM clayhook_schema ORDER BY 1";
    CHECK(server.query(restored, versions) == server.query(source, versions));
    // The paused flag came back: the pending deliveries wait.
    REQUIRE(wait_until([&] { return b.metric("clayhook_dispatch_paused{plugin=\"probe\"}") == 1; },
                       10s));
    REQUIRE(wait_until(
        [&] { return b.metric("clayhook_dispatch_pending{plugin=\"probe\"}") == 10; }, 10s));
    CHECK(b.handled().empty());

    // A sender's retry of a dumped event, finished or pending, is a duplicate
    // answered with the id it got before.
    const std::vector<std::pair<std::string, std::string>> retries = {
        {"done_3", done_ids[3]}, {"pending_7", pending_ids[7]}, {"dead_0", failed.id}};
    for (const auto& [row, id] : retries) {
        auto again = b.post(row, row == "dead_0" ? R"({"fail":true})" : "{}");
        INFO(row << ": " << again.body);
        REQUIRE(again.status == 200);
        CHECK(json::parse(again.body).get_bool("duplicate", false));
        CHECK(again.id == id);
    }
    CHECK(server.query(restored, "SELECT count(*) FROM events") == std::to_string(acknowledged));

    // Resumed, the deliveries pending at the dump run, each once; the ones
    // finished before it never again.
    REQUIRE(b.admin("POST", "/admin/plugins/probe/resume").status == 200);
    REQUIRE(wait_until(
        [&] {
            return server.query(restored, "SELECT count(*) FROM deliveries WHERE state = 0") == "0";
        },
        30s));
    auto seen = b.handled();
    for (const auto& id : pending_ids)
        CHECK(seen[id] == 1);
    for (const auto& id : done_ids)
        CHECK(seen.count(id) == 0);
    CHECK(seen.count(failed.id) == 0);
    CHECK(seen.size() == pending_ids.size());

    // A new event: stored after the restored rows (the identity sequences
    // came back; a lost one would collide with a restored key) and handled.
    const std::string max_seq = server.query(restored, "SELECT max(seq) FROM events");
    const std::string max_delivery = server.query(restored, "SELECT max(id) FROM deliveries");
    auto fresh = b.post("after_restore");
    INFO(fresh.body);
    REQUIRE(fresh.status == 200);
    CHECK_FALSE(json::parse(fresh.body).get_bool("duplicate", false));
    const std::string row = server.query(
        restored, "SELECT e.seq > " + max_seq + ", d.id > " + max_delivery +
                      " FROM events e JOIN deliveries d ON d.event_seq = e.seq WHERE e.id = '" +
                      fresh.id + "'");
    CHECK(row == "t|t");
    REQUIRE(wait_until([&] { return b.handled().count(fresh.id) == 1; }, 30s));
    CHECK(server.query(restored, "SELECT count(*) FROM events") ==
          std::to_string(acknowledged + 1));
    CHECK(b.stop() == 0);
}

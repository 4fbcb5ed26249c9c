// `clayhook events list` and `clayhook events show`, the binary run against a
// real host (admin API on port 0, the probe plugin): the list newest first
// with its delivery counts, filters and paging; one event with its body
// pretty-printed, its delivery and the failed attempt's reason; control bytes
// of a body never reach the terminal raw; bad ids and flag values are refused
// before any request.
#include "clay/ClayApi.h"
#include "support/HostProcess.h"
#include "support/SignedPost.h"
#include "support/Subprocess.h"
#include "support/TestPaths.h"
#include "support/Wait.h"

#include <clayhook/json.hpp>

#include <sqlite3.h>

#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

using namespace clayhook;
using namespace clayhook::test;
using namespace std::chrono_literals;

namespace {

const char* kSecret = "events-secret";
const char* kToken = "events-admin-token";

struct Host : HostProcess {
    std::string db = dir.file("var/clayhook.db");

    Host() {
        options.env["EVENTS_SECRET"] = kSecret;
        options.env["EVENTS_TOKEN"] = kToken;
        write_config(
            R"(admin: {enabled: true, address: 127.0.0.1, port: 0, token: "${EVENTS_TOKEN}"}
listener: {address: 127.0.0.1, port: 0}
store: {path: )" +
            db + R"(}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["${EVENTS_SECRET}"]}
plugins:
  - name: probe
    library: )" +
            std::string(kFixturePluginDir) + R"(/probe.so
    config: {log: )" +
            dir.file("probe.jsonl") + R"(}
)");
    }

    // Posts one event; REQUIREs a 200 and returns its id.
    std::string post(const std::string& type, const std::string& row,
                     const std::string& extra = "") const {
        auto r = signed_post(port(), kSecret,
                             R"({"event":")" + type + R"(","row_id":")" + row +
                                 R"(","timestamp":"2026-11-26T12:00:42.042Z")" + extra + "}");
        INFO(r.body);
        REQUIRE(r.status == 200);
        return r.id;
    }

    std::string admin_url() const { return "http://127.0.0.1:" + std::to_string(admin_port()); }

    // Every stored event has no pending delivery left.
    bool settled() const {
        auto r = http_exchange("GET", admin_url() + "/admin/events",
                               {{"Authorization", std::string("Bearer ") + kToken}}, "", 10s);
        if (r.status != 200) return false;
        const json::Value v = json::parse(r.body);
        for (const auto& e : v.find("events")->items())
            if (e.find("deliveries")->get_int("pending", 1) != 0) return false;
        return true;
    }

    // `clayhook events ARGS... --config c.yaml --admin URL`, the binary.
    RunResult events(std::vector<std::string> args) const {
        std::vector<std::string> argv = {kClayhookBin, "events"};
        argv.insert(argv.end(), args.begin(), args.end());
        for (const std::string& a :
             {std::string("--config"), config, std::string("--admin"), admin_url()})
            argv.push_back(a);
        Subprocess::Options o;
        o.env["EVENTS_TOKEN"] = kToken;
        o.unset_env.push_back("CLAYHOOK_CONFIG");
        return run(argv, o, 30s);
    }
};

std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    std::string line;
    while (std::getline(in, line))
        out.push_back(line);
    return out;
}

std::vector<std::string> fields(const std::string& line) {
    std::vector<std::string> out;
    std::istringstream in(line);
    std::string f;
    while (in >> f)
        out.push_back(f);
    return out;
}

// A byte a terminal would act on: C0 other than the line ends between lines,
// DEL, or a C1 control in UTF-8 (0xC2 0x80-0x9F).
bool has_raw_control(const std::string& s) {
    for (size_t i = 0; i < s.size(); ++i) {
        auto b = static_cast<unsigned char>(s[i]);
        if ((b < 0x20 && b != '\n') || b == 0x7f) return true;
        if (b == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
            static_cast<unsigned char>(s[i + 1]) <= 0x9f)
            return true;
    }
    return false;
}

// The ids of the rows of an `events list` table, in order.
std::vector<std::string> listed_ids(const std::string& out) {
    std::vector<std::string> ids;
    for (const auto& l : lines(out))
        if (l.rfind("evt_", 0) == 0) ids.push_back(fields(l)[0]);
    return ids;
}

}  // namespace

TEST_CASE("events list: newest first with delivery counts, --type, --status, --json and paging",
          "[cli][events]") {
    Host h;
    h.start();
    const std::string e1 = h.post("table.row.created", "r1");
    const std::string e2 = h.post("enrichment.completed", "r2", R"(,"probe":{"fail":true})");
    const std::string e3 = h.post("enrichment.completed", "r3");
    REQUIRE(wait_until([&] { return h.settled(); }, 30s));

    auto r = h.events({"list"});
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    auto ls = lines(r.out);
    REQUIRE(ls.size() == 4);  // the header and three events, no "more:" line
    CHECK(ls[0].rfind("ID", 0) == 0);
    CHECK(ls[0].find("RECEIVED_AT") != std::string::npos);
    CHECK(ls[0].find("PENDING") != std::string::npos);
    CHECK(listed_ids(r.out) == std::vector<std::string>{e3, e2, e1});
    // id, received_at, type, source, …, pending, done, dead.
    const auto failed = fields(ls[2]), done = fields(ls[3]);
    CHECK(failed[2] == "enrichment.completed");
    CHECK(failed[3] == "clay");
    CHECK(failed[1].size() == 24);  // 2026-11-27T04:21:19.335Z
    CHECK(std::vector<std::string>(failed.end() - 3, failed.end()) ==
          std::vector<std::string>{"0", "0", "1"});
    CHECK(fields(ls[1])[2] == "enrichment.completed");
    CHECK(done[2] == "table.row.created");
    CHECK(std::vector<std::string>(done.end() - 3, done.end()) ==
          std::vector<std::string>{"0", "1", "0"});

    r = h.events({"list", "--type", "table.row.created"});
    CHECK(r.code == 0);
    CHECK(listed_ids(r.out) == std::vector<std::string>{e1});
    r = h.events({"list", "--status", "dead"});
    CHECK(r.code == 0);
    CHECK(listed_ids(r.out) == std::vector<std::string>{e2});
    r = h.events({"list", "--type", "workflow.completed"});
    CHECK(r.code == 0);
    CHECK(r.out == "no events\n");
    r = h.events({"list", "--since", "2026-11-27T00:00:00Z", "--until", "0"});
    CHECK(r.code == 0);
    CHECK(listed_ids(r.out).size() == 3);

    // --json: the API's answer as it is.
    r = h.events({"list", "--json"});
    REQUIRE(r.code == 0);
    auto v = json::parse(r.out);
    const json::Value* list = v.find("events");
    REQUIRE(list != nullptr);
    REQUIRE(list->size() == 3);
    CHECK((*list)[0].get_string("id", "") == e3);
    CHECK((*list)[1].find("deliveries")->get_int("dead", 0) == 1);
    CHECK(v.find("next_before")->is_null());

    // Paging: a full page says how to get the next one.
    r = h.events({"list", "--limit", "1"});
    CHECK(r.code == 0);
    CHECK(listed_ids(r.out) == std::vector<std::string>{e3});
    CHECK(lines(r.out).back() == "more: --before " + e3);
    r = h.events({"list", "--limit", "1", "--before", e3});
    CHECK(listed_ids(r.out) == std::vector<std::string>{e2});
    CHECK(lines(r.out).back() == "more: --before " + e2);
    r = h.events({"list", "--limit=2", "--before", e2});
    CHECK(listed_ids(r.out) == std::vector<std::string>{e1});
    CHECK(r.out.find("more:") == std::string::npos);  // not a full page
    r = h.events({"list", "--before", e1});
    CHECK(r.code == 0);
    CHECK(r.out == "no events\n");
    CHECK(h.stop() == 0);
}

TEST_CASE(
    "events show: the body pretty-printed, the delivery and the failed attempt's reason, "
    "an unknown id exits 1 and a malformed one 2",
    "[cli][events]") {
    Host h;
    h.start();
    const std::string ok = h.post("table.row.created", "r1", R"(,"fields":{"n":[1,2],"e":{}})");
    const std::string bad = h.post("enrichment.completed", "r2", R"(,"probe":{"fail":true})");
    REQUIRE(wait_until([&] { return h.settled(); }, 30s));

    auto r = h.events({"show", bad});
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    CHECK(r.err.empty());
    CHECK(r.out.find("id:          " + bad + "\n") == 0);
    CHECK(r.out.find("\nsource:      clay\n") != std::string::npos);
    CHECK(r.out.find("\ntype:        enrichment.completed\n") != std::string::npos);
    CHECK(r.out.find("\nkey:         ") != std::string::npos);
    CHECK(r.out.find("\nreceived_at: 20") != std::string::npos);
    CHECK(r.out.find("\nbody:\n  {\n    \"event\": \"enrichment.completed\",\n"
                     "    \"row_id\": \"r2\",\n") != std::string::npos);
    CHECK(r.out.find("\n    \"probe\": {\n      \"fail\": true\n    }\n  }\n") !=
          std::string::npos);
    CHECK(r.out.find("\ndeliveries:  1\n") != std::string::npos);
    CHECK(r.out.find("  plugin probe  dead  attempts 1\n") != std::string::npos);
    CHECK(r.out.find("\n    finished_at: 20") != std::string::npos);
    CHECK(r.out.find("\n    last_error:  failed: probe says fail\n") != std::string::npos);
    CHECK(r.out.find("\n    attempts that did not succeed:\n      #1   20") != std::string::npos);
    auto last = fields(lines(r.out).back());
    REQUIRE(last.size() >= 5);
    CHECK(last[0] == "#1");
    CHECK(last[3] == "ms");
    CHECK(last[4] == "fail");
    CHECK(lines(r.out).back().find(" probe says fail") != std::string::npos);

    r = h.events({"show", ok});
    CHECK(r.code == 0);
    CHECK(r.out.find("\n    \"fields\": {\n      \"n\": [\n        1,\n        2\n      ],\n"
                     "      \"e\": {}\n    }\n") != std::string::npos);
    CHECK(r.out.find("  plugin probe  done  attempts 1\n") != std::string::npos);
    CHECK(r.out.find("last_error") == std::string::npos);
    CHECK(r.out.find("attempts that did not succeed") == std::string::npos);

    r = h.events({"show", bad, "--json"});
    REQUIRE(r.code == 0);
    auto v = json::parse(r.out);
    CHECK(v.get_string("id", "") == bad);
    CHECK(v.find("deliveries")->items()[0].find("attempts_history")->size() == 1);

    // Well formed, not stored: the API's 404.
    const std::string unknown = "evt_" + std::string(23, '0');
    r = h.events({"show", unknown});
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK(r.err == "clayhook events show: admin API answered 404: no event " + unknown + "\n");

    // Not an event id: refused before any request (the API would answer 400, exit 1).
    for (const std::string& id : {std::string("nope"), "evt_" + std::string(22, '0'),
                                  "evt_" + std::string(23, 'A'), "evt_" + std::string(24, '0')}) {
        r = h.events({"show", id});
        INFO(id << ": " << r.err);
        CHECK(r.code == 2);
        CHECK(r.err.find("clayhook events show: '" + id + "' is not an event id") == 0);
    }
    CHECK(h.events({"show"}).code == 2);
    CHECK(h.events({"show", ok, bad}).code == 2);
    CHECK(h.stop() == 0);
}

TEST_CASE("events show: control bytes of a body are shown escaped, never raw", "[cli][events]") {
    Host h;
    h.start();
    // JSON escapes for ESC, a newline and a C1 CSI (U+009B, which JSON may
    // carry raw and a dump leaves raw).
    const std::string json_id =
        h.post("table.row.updated", "r1", R"(,"note":"a\u001b[31mred\nline\u009b2J")");
    const std::string raw_id = h.post("table.row.updated", "r2");
    REQUIRE(wait_until([&] { return h.settled(); }, 30s));

    auto r = h.events({"show", json_id});
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    CHECK_FALSE(has_raw_control(r.out));
    CHECK(r.out.find(R"(    "note": "a\u001b[31mred\nline\u009b2J")") != std::string::npos);

    // A body that is not JSON (the intake never stores one): raw, escaped (the
    // API has already made the invalid byte U+FFFD).
    REQUIRE(h.stop() == 0);
    {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(h.db.c_str(), &db) == SQLITE_OK);
        sqlite3_stmt* st = nullptr;
        REQUIRE(sqlite3_prepare_v2(db, "UPDATE events SET body = ? WHERE id = ?", -1, &st,
                                   nullptr) == SQLITE_OK);
        const std::string body = "not json\n\x1b[2Jcleared\r\x07\xff";
        sqlite3_bind_blob(st, 1, body.data(), static_cast<int>(body.size()), SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, raw_id.c_str(), -1, SQLITE_TRANSIENT);
        CHECK(sqlite3_step(st) == SQLITE_DONE);
        CHECK(sqlite3_changes(db) == 1);
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    h.start();
    r = h.events({"show", raw_id});
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    CHECK_FALSE(has_raw_control(r.out));
    CHECK(r.out.find("\nbody (not JSON, shown with escapes):\n"
                     "  not json\\n\\x1b[2Jcleared\\r\\x07\xef\xbf\xbd\n") != std::string::npos);
    CHECK(h.stop() == 0);
}

TEST_CASE("events: bad flag values and subcommands are usage errors, exit 2, no request made",
          "[cli][events]") {
    // A config that does not exist and an admin URL nobody serves: reaching
    // either would exit 1 or 7, not 2.
    TempDir dir;
    auto cli = [&](std::vector<std::string> args) {
        std::vector<std::string> argv = {kClayhookBin, "events"};
        argv.insert(argv.end(), args.begin(), args.end());
        for (const char* a : {"--config", "missing.yaml", "--admin", "http://127.0.0.1:1"})
            argv.push_back(a);
        Subprocess::Options o;
        o.cwd = dir.path().string();
        o.unset_env.push_back("CLAYHOOK_CONFIG");
        return run(argv, o, 30s);
    };
    struct Case {
        std::vector<std::string> args;
        std::string message;
    };
    const std::vector<Case> cases = {
        {{}, "clayhook events: the subcommand is 'list' or 'show'"},
        {{"tail"}, "clayhook events: the subcommand is 'list' or 'show'"},
        {{"list", "--status", "failed"},
         "clayhook events list: --status: expected pending, done or dead, got 'failed'"},
        {{"list", "--limit", "0"},
         "clayhook events list: --limit: expected a whole number from 1 to 1000, got '0'"},
        {{"list", "--limit", "1001"}, "--limit: expected a whole number from 1 to 1000"},
        {{"list", "--limit", "10x"}, "--limit: expected a whole number from 1 to 1000"},
        {{"list", "--before", "7"},
         "clayhook events list: --before: expected an event id (evt_ and 23 hex digits), got '7'"},
        {{"list", "--since", "yesterday"},
         "clayhook events list: --since: expected unix milliseconds or an ISO 8601 time, got "
         "'yesterday'"},
        {{"list", "--until", "-5"}, "--until: expected unix milliseconds or an ISO 8601 time"},
        {{"list", "--type="}, "clayhook events list: --type: expected an event type"},
        {{"list", "--state", "dead"}, "clayhook events list: unexpected argument '--state'"},
        {{"list", "extra"}, "clayhook events list: unexpected argument 'extra'"},
        {{"list", "--limit=abc"}, "--limit: expected a whole number from 1 to 1000, got 'abc'"},
        {{"show", "evt_x\x1b[2J"}, "clayhook events show: 'evt_x\\x1b[2J' is not an event id"},
    };
    for (const auto& c : cases) {
        auto r = cli(c.args);
        INFO(r.err);
        CHECK(r.code == 2);
        CHECK(r.out.empty());
        CHECK(r.err.find(c.message) != std::string::npos);
        CHECK(r.err.find("usage: clayhook events list") != std::string::npos);
        CHECK_FALSE(has_raw_control(r.err));
    }
    // Good values get as far as the config (exit 1: it does not exist).
    CHECK(cli({"list", "--status", "dead", "--limit", "1000", "--since", "1795753330000", "--until",
               "2026-11-27T04:22:11.600+01:00", "--before", "evt_001a21b3c7f65171bcfcc32"})
              .code == 1);
}

// A broken plugin never becomes an outage or a silent loss. Real `clayhook
// serve` children with the probe plugin told to segfault, abort, hang or leak
// on chosen events:
// - isolated (isolation: process), the host never dies, the intake answers
//   200 throughout, the poison ends dead with a reason naming what happened,
//   and every other acknowledged delivery is handled once;
// - in-process, the host dies with a last line naming the plugin and the
//   delivery; restarted as systemd would restart it, it ends serving with the
//   poison dead (dispatch.poison_after);
// - the operator marks pending deliveries dead through the admin API and the
//   CLI;
// - a plugin whose library is missing at start keeps its deliveries, and a
//   reload that finds it runs each of them once.
#include "clay/ClayApi.h"
#include "cli/Commands.h"
#include "support/HostProcess.h"
#include "support/ProbeLog.h"
#include "support/SignedPost.h"
#include "support/TestPaths.h"
#include "support/Wait.h"

#include <clayhook/json.hpp>

#include <sqlite3.h>

#include <catch2/catch.hpp>

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

using namespace clayhook;
using namespace clayhook::test;
using namespace std::chrono_literals;

namespace {

const char* kSecret = "containment-secret";
const char* kToken = "containment-admin-token";

struct Host : HostProcess {
    std::string db = dir.file("var/clayhook.db");
    std::string probe_log = dir.file("probe.jsonl");

    // `plugin`: the probe's entry past its name and library (indented 4).
    Host(const std::string& plugin, const std::string& dispatch,
         const std::string& library = std::string(kFixturePluginDir) + "/probe.so") {
        options.env["CONTAIN_SECRET"] = kSecret;
        options.env["CONTAIN_TOKEN"] = kToken;
        write_config(
            R"(admin: {enabled: true, address: 127.0.0.1, port: 0, token: "${CONTAIN_TOKEN}"}
listener: {address: 127.0.0.1, port: 0, threads: 8}
store: {path: )" +
            db + R"(}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["${CONTAIN_SECRET}"]}
dispatch: )" +
            dispatch + R"(
plugins:
  - name: probe
    library: )" +
            library + R"(
    config: {log: )" +
            probe_log + R"(}
)" + plugin);
    }

    SignedReply post(const std::string& row, const std::string& probe = "{}") const {
        return signed_post(port(), kSecret,
                           R"({"event":"enrichment.completed","row_id":")" + row +
                               R"(","timestamp":"2026-11-26T12:00:42.042Z","probe":)" + probe +
                               "}");
    }

    HttpResponse admin(const std::string& method, const std::string& path,
                       const std::string& body = "") const {
        return http_exchange(method, "http://127.0.0.1:" + std::to_string(admin_port()) + path,
                             {{"Authorization", std::string("Bearer ") + kToken}}, body, 10s);
    }
    json::Value admin_json(const std::string& path) const {
        auto r = admin("GET", path);
        INFO(r.body);
        REQUIRE(r.status == 200);
        return json::parse(r.body);
    }
    // The one delivery of event `id` (the probe is the only plugin).
    json::Value delivery(const std::string& id) const {
        auto v = admin_json("/admin/events/" + id);
        const json::Value* ds = v.find("deliveries");
        REQUIRE(ds != nullptr);
        REQUIRE(ds->items().size() == 1);
        return ds->items()[0];
    }
    std::string state(const std::string& id) const { return delivery(id).get_string("state", ""); }
    double metric(const std::string& series) const {
        auto r = http_exchange("GET", url("/metrics"), {}, "", 10s);
        std::istringstream in(r.body);
        std::string line;
        while (std::getline(in, line))
            if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
        return -1;
    }
    std::map<std::string, int> handled() const { return probe_handlings(probe_log); }
    // Every one of `ids` was handed to the probe (at least once).
    bool handled_all(const std::vector<std::string>& ids) const {
        auto seen = handled();
        for (const auto& id : ids)
            if (seen[id] == 0) return false;
        return true;
    }
};

}  // namespace

TEST_CASE(
    "isolated: a plugin that segfaults, aborts, hangs or leaks never takes the host down, the "
    "poison ends dead, everything else is handled once",
    "[dispatch][isolation]") {
    // One call at a time, so no other delivery is ever in flight beside a
    // crash (a bystander would rightly be retried: at-least-once).
    Host h(R"(    isolation: process
    concurrency: 1
    memory_limit: 64MiB
)",
           "{call_timeout: 1s, call_grace: 300ms, restart_backoff: 20ms, restart_backoff_cap: "
           "200ms, retry: {max_attempts: 2, backoff_base: 20ms, backoff_cap: 50ms}}");
    h.start();

    // A steady stream of good deliveries from the first moment to the last.
    std::mutex mu;
    std::vector<std::string> good;
    std::vector<int> statuses;
    std::atomic<bool> stop{false};
    std::thread client([&] {
        for (int i = 0; !stop; ++i) {
            auto r = h.post("good_" + std::to_string(i));
            std::lock_guard lk(mu);
            statuses.push_back(r.status);
            if (r.status == 200) good.push_back(r.id);
            std::this_thread::sleep_for(5ms);
        }
    });
    const std::map<std::string, std::string> poison = {
        {"segv", R"({"segv":true})"},
        {"abort", R"({"abort":true})"},
        {"hang", R"({"hang":true})"},
        {"leak", R"({"leak_mb":200})"},
    };
    std::map<std::string, std::string> ids;
    for (const auto& [name, probe] : poison) {
        auto r = h.post("poison_" + name, probe);
        REQUIRE(r.status == 200);
        ids[name] = r.id;
    }
    bool all_dead = wait_until(
        [&] {
            for (const auto& [name, id] : ids)
                if (h.state(id) != "dead") return false;
            return true;
        },
        90s);
    stop = true;
    client.join();
    REQUIRE(all_dead);

    const std::map<std::string, std::string> expect = {
#ifdef __SANITIZE_ADDRESS__
        // AddressSanitizer reports the fault and ends the worker its own way.
        {"segv", "plugin process "},
#else
        {"segv", "plugin process killed by SIGSEGV"},
#endif
        {"abort", "plugin process killed by SIGABRT"},
        {"hang", "a call ran past dispatch.call_timeout (1000 ms) and the grace (300 ms)"},
        {"leak", "exceeded memory_limit (64 MiB)"},
    };
    for (const auto& [name, id] : ids) {
        auto d = h.delivery(id);
        INFO(name << ": " << json::dump(d));
        CHECK(d.get_string("last_error", "").find(expect.at(name)) != std::string::npos);
        CHECK(d.get_int("attempts", 0) == 2);  // the retry policy, like any failure
    }
    // The intake never stopped answering, and the host never died.
    {
        std::lock_guard lk(mu);
        CHECK(good.size() > 10);
        for (int s : statuses)
            CHECK(s == 200);
    }
    REQUIRE(wait_until([&] { return h.handled_all(good); }, 60s));
    auto seen = h.handled();
    for (const auto& id : good)
        CHECK(seen[id] == 1);
    for (const auto& [name, id] : ids)
        CHECK(seen[id] == 0);
    CHECK(h.metric(R"(clayhook_plugin_worker_restarts_total{plugin="probe"})") >= 8);
    CHECK(h.metric(R"(clayhook_plugin_worker_kills_total{plugin="probe"})") >= 4);
    CHECK(h.err().find("msg=\"plugin process died; starting it again\"") != std::string::npos);
    CHECK(h.stop() == 0);
}

TEST_CASE(
    "in-process: a segfaulting plugin kills the host with a last line, restarted as systemd "
    "would, it ends serving with the poison dead",
    "[dispatch][poison]") {
    Host h("    isolation: in-process\n",
           "{workers: 1, retry: {max_attempts: 10, backoff_base: 20ms, backoff_cap: 50ms}}");
    h.start();
    auto first = h.post("before");
    REQUIRE(first.status == 200);
    REQUIRE(wait_until([&] { return h.handled()[first.id] == 1; }, 30s));
    auto bad = h.post("poison", R"({"segv":true})");
    REQUIRE(bad.status == 200);
    // The host dies at once: its delivery id is in the store file.
    int64_t delivery = 0;
    REQUIRE(h.wait(60s) != 0);
    {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open_v2(h.db.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
        sqlite3_stmt* s = nullptr;
        REQUIRE(sqlite3_prepare_v2(db,
                                   "SELECT d.id FROM deliveries d JOIN events e"
                                   " ON e.seq = d.event_seq WHERE e.id = ?1",
                                   -1, &s, nullptr) == SQLITE_OK);
        sqlite3_bind_text(s, 1, bad.id.c_str(), -1, SQLITE_TRANSIENT);
        REQUIRE(sqlite3_step(s) == SQLITE_ROW);
        delivery = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        sqlite3_close(db);
    }

    // Each start runs it again and dies of it, until dispatch.poison_after
    // (3) lost attempts make it dead at the claim.
    auto check_last_line = [&] {
        const std::string log = h.err();
        INFO(log);
        CHECK(log.find("msg=\"fatal signal in a plugin call; the process dies\"") !=
              std::string::npos);
        CHECK(log.find("signal=SIGSEGV plugin=probe deliveries=" + std::to_string(delivery)) !=
              std::string::npos);
    };
    check_last_line();
    std::vector<std::string> later;
    int crashes = 1;
    for (;;) {
        // The poison may be handed over (and kill the host) before the ready
        // line: a start that dies early is one more crash.
        const bool ready = h.try_start();
        CHECK(h.err().find("the last run died of SIGSEGV in a call of plugin 'probe'") !=
              std::string::npos);
        if (ready) {
            auto r = h.post("between_" + std::to_string(crashes));
            if (r.status == 200) later.push_back(r.id);
            if (h.wait(5s) == -1) break;  // still serving
        } else {
            REQUIRE(h.wait(30s) != -1);
        }
        ++crashes;
        check_last_line();
        REQUIRE(crashes < 6);
    }
    CHECK(crashes == 3);
    REQUIRE(wait_until([&] { return h.state(bad.id) == "dead"; }, 30s));
    auto d = h.delivery(bad.id);
    INFO(json::dump(d));
    const std::string why = d.get_string("last_error", "");
    CHECK(why.find("poison: the host died during 3 calls of this delivery") != std::string::npos);
    CHECK(why.find("SIGSEGV") != std::string::npos);
    // It serves on: what arrived between the crashes and after is handled.
    auto after = h.post("after");
    REQUIRE(after.status == 200);
    later.push_back(after.id);
    REQUIRE(wait_until([&] { return h.handled_all(later); }, 30s));
    auto seen = h.handled();
    CHECK(seen[first.id] == 1);
    for (const auto& id : later)
        CHECK(seen[id] == 1);
    CHECK(h.stop() == 0);
}

TEST_CASE("kill: the operator marks pending deliveries dead through the admin API and the CLI",
          "[dispatch][poison]") {
    Host h("    isolation: process\n", "{workers: 1}");
    h.start();
    REQUIRE(h.admin("POST", "/admin/plugins/probe/pause").status == 200);
    auto a = h.post("a"), b = h.post("b"), c = h.post("c");
    REQUIRE((a.status == 200 && b.status == 200 && c.status == 200));

    // By event, through the API.
    auto r = h.admin("POST", "/admin/kill", R"({"event":")" + a.id + R"(","reason":"poison"})");
    INFO(r.body);
    REQUIRE(r.status == 200);
    CHECK(json::parse(r.body).get_int("killed", 0) == 1);
    CHECK(h.state(a.id) == "dead");
    CHECK(h.delivery(a.id).get_string("last_error", "") == "marked dead by the operator: poison");
    CHECK(h.admin("POST", "/admin/kill", "{}").status == 400);
    CHECK(h.admin("POST", "/admin/kill", R"({"plugin":"probe","bogus":1})").status == 400);

    // By id, through the CLI.
    ::setenv("CONTAIN_TOKEN", kToken, 1);
    std::ostringstream out, err;
    const std::string id = std::to_string(h.delivery(b.id).get_int("id", 0));
    int code = run_cli({"kill", "--config", h.config, "--admin",
                        "http://127.0.0.1:" + std::to_string(h.admin_port()), id},
                       out, err);
    INFO(out.str() << err.str());
    CHECK(code == 0);
    CHECK(out.str() == "marked 1 pending delivery dead: " + id + "\n");
    CHECK(h.state(b.id) == "dead");

    // Resumed, the plugin runs only what is still pending.
    REQUIRE(h.admin("POST", "/admin/plugins/probe/resume").status == 200);
    REQUIRE(wait_until([&] { return h.state(c.id) == "done"; }, 30s));
    auto seen = h.handled();
    CHECK(seen[a.id] == 0);
    CHECK(seen[b.id] == 0);
    CHECK(seen[c.id] == 1);
    CHECK(h.stop() == 0);
}

TEST_CASE(
    "a plugin that cannot be loaded at start: the intake serves, its deliveries wait, and the "
    "reload that loads it runs each once",
    "[dispatch][down]") {
    TempDir where;
    const std::string missing = where.file("probe-not-yet.so");
    Host h("", "{workers: 2}", missing);
    h.start();
    CHECK(h.err().find("plugin is DOWN") != std::string::npos);
    CHECK(http_exchange("GET", h.url("/readyz"), {}, "", 10s).status == 200);
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) {
        auto r = h.post("w" + std::to_string(i));
        REQUIRE(r.status == 200);
        ids.push_back(r.id);
    }
    auto plugins = h.admin_json("/admin/plugins");
    INFO(json::dump(plugins));
    const json::Value* down = plugins.find("down");
    REQUIRE(down != nullptr);
    REQUIRE(down->items().size() == 1);
    CHECK(down->items()[0].get_string("name", "") == "probe");
    CHECK(down->items()[0].get_string("reason", "").find("the file does not exist") !=
          std::string::npos);
    CHECK(down->items()[0].get_int("pending", 0) == 5);
    CHECK(h.metric(R"(clayhook_plugin_down{plugin="probe"})") == 1);
    REQUIRE(wait_until(
        [&] { return h.metric(R"(clayhook_dispatch_waiting{plugin="probe"})") == 5; }, 10s));

    // The operator puts the file in place and reloads.
    std::filesystem::copy_file(std::string(kFixturePluginDir) + "/probe.so", missing);
    h.signal(SIGHUP);
    REQUIRE(wait_until([&] { return h.handled_all(ids); }, 30s));
    auto seen = h.handled();
    for (const auto& id : ids)
        CHECK(seen[id] == 1);
    CHECK(h.metric(R"(clayhook_plugin_down{plugin="probe"})") == 0);
    CHECK(h.stop() == 0);
}

TEST_CASE("a fatal signal sent by kill() ends the host too, with its last line",
          "[dispatch][poison]") {
    // Nothing re-executes after the handler for a signal another process
    // sent: the handler raises it again instead of returning into a host
    // that would run on without it.
    Host h("    isolation: in-process\n", "{workers: 1}");
    h.start();
    h.signal(SIGSEGV);
    CHECK(h.wait(30s) != -1);
    CHECK(h.err().find("msg=\"fatal signal; the process dies\" signal=SIGSEGV") !=
          std::string::npos);
}

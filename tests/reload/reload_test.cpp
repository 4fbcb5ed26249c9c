// Hot reload on a real `clayhook serve` child: SIGHUP and POST /admin/reload
// swap plugin versions and configs make-before-break; a failed reload
// changes nothing; under continuous load nothing is refused, lost or handled
// twice.
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
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

using namespace clayhook;
using namespace clayhook::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const char* kSecret = "reload-test-secret";
const char* kToken = "reload-test-admin-token";

size_t count_of(const std::string& hay, const std::string& needle) {
    size_t n = 0;
    for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1))
        ++n;
    return n;
}

struct ReloadHost : HostProcess {
    std::string db = dir.file("var/clayhook.db");
    std::string probe_log = dir.file("probe.jsonl");
    std::string gate = dir.file("gate");

    ReloadHost() {
        options.env["RELOAD_SECRET"] = kSecret;
        options.env["RELOAD_TOKEN"] = kToken;
    }

    // Copies a fixture build to `name` in the test folder, atomically (the
    // host loads a staged copy, so replacing the file is what an operator
    // does after a rebuild).
    std::string install(const std::string& fixture, const std::string& name) {
        std::string to = dir.file(name);
        std::string tmp = to + ".tmp";
        fs::copy_file(std::string(kFixturePluginDir) + "/" + fixture, tmp,
                      fs::copy_options::overwrite_existing);
        fs::rename(tmp, to);
        return to;
    }

    // Writes the config: the probe from `library` (none when empty), with
    // `extra` appended to its entry, and `listener_port` for the listener.
    void write_config(const std::string& library, const std::string& extra = "",
                      int listener_port = 0) {
        std::string yaml = R"(admin: {address: 127.0.0.1, port: 0, token: "${RELOAD_TOKEN}"}
listener: {address: 127.0.0.1, port: )" +
                           std::to_string(listener_port) + R"(, threads: 16}
store: {path: )" + db + R"(}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["${RELOAD_SECRET}"]}
dispatch: {workers: 2}
)";
        if (!library.empty())
            yaml += R"(plugins:
  - name: probe
    library: )" + library +
                    R"(
    config: {log: )" +
                    probe_log + R"(}
)" + extra;
        HostProcess::write_config(yaml);
    }

    void start() {
        HostProcess::start();
        REQUIRE(admin_port() != 0);
    }

    // Posts one signed delivery: the HTTP status (0 when no answer) and the id.
    std::pair<int, std::string> post(const std::string& row, const std::string& probe = "{}",
                                     uint16_t to = 0) const {
        auto r =
            signed_post(to ? to : port(), kSecret,
                        R"({"event":"enrichment.completed","row_id":")" + row +
                            R"(","timestamp":"2026-11-27T12:00:42.042Z","probe":)" + probe + "}");
        return {r.status, r.id};
    }

    HttpResponse admin(const std::string& method, const std::string& path) const {
        return http_exchange(method, "http://127.0.0.1:" + std::to_string(admin_port()) + path,
                             {{"Authorization", std::string("Bearer ") + kToken}}, "", 30s);
    }

    // The probe's lines by event id (each a handling), with the version.
    std::map<std::string, std::vector<std::string>> handled() const {
        std::map<std::string, std::vector<std::string>> out;
        for (const auto& v : probe_lines(probe_log))
            out[v.get_string("id", "")].push_back(v.get_string("version", ""));
        return out;
    }

    int count_state(int state) const {
        int n = 0;
        sqlite3* h = nullptr;
        if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
            sqlite3_busy_timeout(h, 5000);
            sqlite3_stmt* s = nullptr;
            if (sqlite3_prepare_v2(h, "SELECT count(*) FROM deliveries WHERE state = ?1", -1, &s,
                                   nullptr) == SQLITE_OK) {
                sqlite3_bind_int(s, 1, state);
                if (sqlite3_step(s) == SQLITE_ROW) n = sqlite3_column_int(s, 0);
            }
            sqlite3_finalize(s);
        }
        sqlite3_close(h);
        return n;
    }
};

}  // namespace

TEST_CASE("reload: SIGHUP swaps a plugin from version 1 to version 2 for the next events",
          "[reload]") {
    ReloadHost h;
    std::string lib = h.install("probe.so", "plugin.so");
    h.write_config(lib);
    h.start();
    auto [s1, e1] = h.post("row_1");
    REQUIRE(s1 == 200);
    REQUIRE(wait_until([&] { return h.handled().count(e1) == 1; }, 60s));
    CHECK(h.handled()[e1] == std::vector<std::string>{"1.0.0"});

    h.install("probe_v2.so", "plugin.so");  // rebuilt at the same path
    h.signal(SIGHUP);
    REQUIRE(h.wait_for_output("msg=reloaded generation=2", 30s));
    auto [s2, e2] = h.post("row_2");
    REQUIRE(s2 == 200);
    REQUIRE(wait_until([&] { return h.handled().count(e2) == 1; }, 60s));
    CHECK(h.handled()[e2] == std::vector<std::string>{"2.0.0"});
    CHECK(h.handled()[e1].size() == 1);

    auto st = json::parse(h.admin("GET", "/admin/reload").body);
    CHECK(st.get_int("generation", 0) == 2);
    CHECK(st.get_int("reloads_ok", 0) == 1);
    CHECK(st.get_string("last_result", "") == "ok");
    CHECK(st.get_string("last_trigger", "") == "SIGHUP");
    auto plugins = json::parse(h.admin("GET", "/admin/plugins").body);
    CHECK(plugins.find("plugins")->items()[0].get_string("version", "") == "2.0.0");
    CHECK(plugins.get_int("generation", 0) == 2);
}

TEST_CASE(
    "reload: a broken config, a plugin that fails to create or a missing .so change "
    "nothing",
    "[reload]") {
    ReloadHost h;
    std::string lib = h.install("probe.so", "plugin.so");
    h.write_config(lib);
    h.start();
    auto refused = [&](const std::string& why) {
        auto r = h.admin("POST", "/admin/reload");
        INFO(r.body);
        CHECK(r.status == 422);
        auto st = json::parse(r.body);
        CHECK(st.get_string("last_result", "") == "failed");
        CHECK_THAT(st.get_string("last_error", ""), Catch::Contains(why));
        CHECK(st.get_int("generation", 0) == 1);
        // The old generation keeps serving: version 1 handles the next event.
        auto [status, id] = h.post("row_" + why.substr(0, 4) + std::to_string(std::rand()));
        REQUIRE(status == 200);
        REQUIRE(wait_until([&] { return h.handled().count(id) == 1; }, 60s));
        CHECK(h.handled()[id] == std::vector<std::string>{"1.0.0"});
    };

    std::ofstream(h.config, std::ios::app) << "  - name: [oops\n";
    refused("YAML syntax");

    h.write_config(lib, "    concurrency: 0\n");  // out of range
    refused("concurrency");

    // The plugin refuses its config (the probe needs `log`).
    h.write_config(lib);
    {
        std::ifstream in(h.config);
        std::string yaml((std::istreambuf_iterator<char>(in)), {});
        yaml.replace(yaml.find("config: {log:"), 13, "config: {nolog:");
        std::ofstream(h.config) << yaml;
    }
    refused("'log' is required");

    h.write_config(h.dir.file("no-such.so"));
    refused("does not exist");

    auto metrics = http_exchange("GET", "http://127.0.0.1:" + std::to_string(h.port()) + "/metrics",
                                 {}, "", 10s);
    CHECK_THAT(metrics.body, Catch::Contains("clayhook_reloads_total{result=\"failed\"} 4"));
    CHECK_THAT(metrics.body, Catch::Contains("clayhook_last_reload_success 0"));

    // Fixed: the next reload goes through.
    h.write_config(lib);
    CHECK(h.admin("POST", "/admin/reload").status == 200);
}

TEST_CASE("reload: listener changes need a restart and keep the old listener", "[reload]") {
    ReloadHost h;
    std::string lib = h.install("probe.so", "plugin.so");
    h.write_config(lib);
    h.start();
    h.write_config(lib, "", 1);  // another port
    auto r = h.admin("POST", "/admin/reload");
    REQUIRE(r.status == 200);
    auto st = json::parse(r.body);
    REQUIRE(st.find("last_warnings")->size() == 1);
    CHECK_THAT(st.find("last_warnings")->items()[0].as_string(), Catch::Contains("restart"));
    CHECK(h.post("row_x").first == 200);  // the old port still takes deliveries
}

TEST_CASE("reload: a source's max_body_bytes past the running max_body_memory is refused",
          "[reload][body-budget]") {
    ReloadHost h;
    auto config = [&](const std::string& budget, const std::string& max_body) {
        h.HostProcess::write_config(
            R"(admin: {address: 127.0.0.1, port: 0, token: "${RELOAD_TOKEN}"}
listener: {address: 127.0.0.1, port: 0, max_body_memory: )" +
            budget + R"(}
store: {path: )" +
            h.db + R"(}
sources:
  - name: clay
    path: /webhooks/clay
    max_body_bytes: )" +
            max_body +
            R"(
    verify: {scheme: hmac-sha256, secrets: ["${RELOAD_SECRET}"]}
)");
    };
    config("2MiB", "1MiB");
    h.start();
    // Valid as a file, but the listener keeps its 2 MiB until a restart:
    // a 32 MiB body could never be taken.
    config("64MiB", "32MiB");
    auto r = h.admin("POST", "/admin/reload");
    CHECK(r.status == 422);
    CHECK_THAT(json::parse(r.body).get_string("last_error", ""),
               Catch::Contains("more than the running listener.max_body_memory"));
    CHECK(h.post("row_b").first == 200);  // the running generation serves on
}

TEST_CASE("reload: a removed plugin's pending deliveries wait, and run when it comes back",
          "[reload]") {
    ReloadHost h;
    std::string lib = h.install("probe.so", "plugin.so");
    h.write_config(lib, "    concurrency: 1\n");
    h.start();
    // One call blocks on the gate; two wait behind it.
    auto [s1, blocked] = h.post("row_b", R"({"block":)" + json::quote(h.gate) + "}");
    auto [s2, w1] = h.post("row_w1");
    auto [s3, w2] = h.post("row_w2");
    REQUIRE((s1 == 200 && s2 == 200 && s3 == 200));
    REQUIRE(wait_until(
        [&] {
            auto p = json::parse(h.admin("GET", "/admin/plugins").body).find("plugins")->items()[0];
            return p.get_int("in_flight", 0) == 1 && p.get_int("due", 0) == 2;
        },
        60s));

    h.write_config("");  // no plugins at all
    REQUIRE(h.admin("POST", "/admin/reload").status == 200);
    auto p = json::parse(h.admin("GET", "/admin/plugins").body).find("plugins")->items()[0];
    CHECK_FALSE(p.get_bool("loaded", true));
    CHECK(p.get_int("due", 0) == 2);
    // The running call finishes on the instance it started with.
    h.dir.write("gate", "");
    REQUIRE(wait_until([&] { return h.handled().count(blocked) == 1; }, 60s));
    // Its result is committed after the probe's line: wait for that too.
    REQUIRE(wait_until([&] { return h.count_state(1) == 1; }, 60s));
    auto [s4, unrouted] = h.post("row_u");  // no plugin subscribed: no delivery
    REQUIRE(s4 == 200);
    CHECK(h.count_state(0) == 2);  // the two waiting ones, kept
    CHECK(h.handled().count(w1) == 0);

    h.write_config(lib, "    concurrency: 1\n");
    REQUIRE(h.admin("POST", "/admin/reload").status == 200);
    REQUIRE(wait_until([&] { return h.count_state(0) == 0 && h.count_state(1) == 3; }, 60s));
    auto seen = h.handled();
    CHECK(seen[w1].size() == 1);
    CHECK(seen[w2].size() == 1);
    CHECK(seen.count(unrouted) == 0);
}

TEST_CASE(
    "reload: 50 SIGHUPs under load alternating versions and configs, no refusal, no loss, "
    "each delivery handled once",
    "[reload][load]") {
    ReloadHost h;
    std::string a = h.install("probe.so", "a.so");
    std::string b = h.install("probe_v2.so", "b.so");
    h.write_config(a);
    h.start();

    std::mutex mu;
    std::vector<std::string> acked;
    std::atomic<int> refusals{0};
    std::atomic<bool> stop{false};
    auto client = [&](int t) {
        for (int i = 0; !stop; ++i) {
            auto [status, id] = h.post("row_" + std::to_string(t) + "_" + std::to_string(i));
            if (status != 200) {
                ++refusals;
                continue;
            }
            std::lock_guard lock(mu);
            acked.push_back(id);
        }
    };
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t)
        clients.emplace_back(client, t);

    for (int i = 1; i <= 50; ++i) {
        if (i % 2 == 1)
            h.write_config(b, "    concurrency: 1\n    retry: {max_attempts: 5}\n");
        else
            h.write_config(a, "    events: [\"enrichment.*\"]\n");
        h.signal(SIGHUP);
        // Each one done before the next, so all 50 happen (signals pending
        // at once would merge into one).
        REQUIRE(wait_until(
            [&] { return count_of(h.err(), "msg=reloaded") == static_cast<size_t>(i); }, 30s));
    }
    stop = true;
    for (auto& c : clients)
        c.join();

    CHECK(refusals == 0);
    CHECK(count_of(h.err(), "msg=\"reload failed") == 0);
    REQUIRE(acked.size() > 0);
    REQUIRE(wait_until([&] { return h.count_state(1) >= static_cast<int>(acked.size()); }, 60s));
    auto seen = h.handled();
    size_t lost = 0, twice = 0;
    std::map<std::string, size_t> by_version;
    for (const auto& id : acked) {
        if (seen[id].empty()) ++lost;
        if (seen[id].size() > 1) ++twice;
        if (!seen[id].empty()) ++by_version[seen[id][0]];
    }
    INFO(acked.size() << " acknowledged");
    CHECK(lost == 0);
    CHECK(twice == 0);
    CHECK(by_version["1.0.0"] > 0);
    CHECK(by_version["2.0.0"] > 0);
    CHECK(by_version["1.0.0"] + by_version["2.0.0"] == acked.size());
}

TEST_CASE("reload: a SIGHUP during a reload is not lost: one more reload follows", "[reload]") {
    ReloadHost h;
    std::string lib = h.install("probe.so", "plugin.so");
    h.write_config(lib);
    h.start();
    // The next config's plugin takes 500 ms to create: the reload is slow.
    h.write_config(lib);
    {
        std::ifstream in(h.config);
        std::string yaml((std::istreambuf_iterator<char>(in)), {});
        yaml.replace(yaml.find("config: {log:"), 13, "config: {create_sleep_ms: 500, log:");
        std::ofstream(h.config) << yaml;
    }
    h.signal(SIGHUP);
    REQUIRE(h.wait_for_output("msg=\"reload started\"", 30s));
    h.signal(SIGHUP);  // during the first one
    REQUIRE(wait_until([&] { return count_of(h.err(), "msg=reloaded") == 2; }, 30s));
    CHECK_THAT(h.err(), Catch::Contains("msg=reloaded generation=3"));
}

TEST_CASE("reload: `clayhook reload` says what happened, exit 1 when refused", "[reload][cli]") {
    ReloadHost h;
    std::string lib = h.install("probe.so", "plugin.so");
    h.write_config(lib);
    h.start();
    ::setenv("RELOAD_TOKEN", kToken, 1);
    std::string url = "http://127.0.0.1:" + std::to_string(h.admin_port());
    std::ostringstream out, err;
    CHECK(run_cli({"reload", "--config", h.config, "--admin", url}, out, err) == 0);
    CHECK_THAT(out.str(), Catch::StartsWith("reloaded " + h.config + ": generation 2 serving"));
    h.write_config(h.dir.file("gone.so"));
    std::ostringstream out2, err2;
    CHECK(run_cli({"reload", "--config", h.config, "--admin", url}, out2, err2) == 1);
    CHECK_THAT(err2.str(), Catch::Contains("refused, generation 2 keeps serving"));
    CHECK_THAT(err2.str(), Catch::Contains("does not exist"));
    ::unsetenv("RELOAD_TOKEN");
}

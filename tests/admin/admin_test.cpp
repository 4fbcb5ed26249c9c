// The admin API over a real socket, on the rig's store and dispatcher, and the
// CLI commands that call it.
#include "admin/AdminServer.h"
#include "clay/ClayApi.h"
#include "cli/Commands.h"
#include "dispatch/DispatchRig.h"
#include "support/FakeServer.h"
#include "support/RawHttp.h"
#include "support/TempDir.h"
#include "text/Text.h"

#include <cstdlib>

using namespace clayhook;
using namespace clayhook::test;
using namespace std::chrono_literals;

namespace {

const char* kToken = "admin-test-token";

struct AdminRig : DispatchRig {
    std::unique_ptr<AdminServer> admin;
    std::string base;

    void start_admin() {
        AdminConfig ac;
        ac.address = "127.0.0.1";
        ac.port = 0;
        Secret s;
        s.resolved = true;
        s.value = kToken;
        ac.token = s;
        admin = std::make_unique<AdminServer>(ac, *store, *dispatcher, log, metrics);
        admin->start();
        base = "http://127.0.0.1:" + std::to_string(admin->port());
    }
    void stop_admin() {
        if (admin) admin->stop();
        admin.reset();
    }
    ~AdminRig() { stop_admin(); }

    HttpResponse call(const std::string& method, const std::string& path,
                      const std::string& body = "", const std::string& token = kToken) {
        HttpHeaders h;
        if (!token.empty()) h.emplace_back("Authorization", "Bearer " + token);
        return http_exchange(method, base + path, h, body, 10s);
    }
    json::Value get_json(const std::string& path) {
        auto r = call("GET", path);
        INFO(r.body);
        REQUIRE(r.status == 200);
        return json::parse(r.body);
    }
};

// A config for the CLI: the admin token from ADMIN_TEST_TOKEN (set here).
std::string cli_config(const TempDir& dir) {
    ::setenv("ADMIN_TEST_TOKEN", kToken, 1);
    return dir.write("cli.yaml", R"(admin: {token: "${ADMIN_TEST_TOKEN}"}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: token, header: x-token, secrets: ["${ADMIN_TEST_TOKEN}"]}
)");
}

int cli(const std::vector<std::string>& args, std::string& out, std::string& err) {
    std::ostringstream o, e;
    int code = run_cli(args, o, e);
    out = o.str();
    err = e.str();
    return code;
}

}  // namespace

TEST_CASE("admin: every request needs the bearer token", "[admin]") {
    AdminRig rig;
    rig.up();
    rig.start_admin();
    CHECK(rig.call("GET", "/admin/plugins", "", "").status == 401);
    CHECK(rig.call("GET", "/admin/plugins", "", "wrong").status == 401);
    CHECK(rig.call("GET", "/admin/plugins", "", std::string(kToken) + "x").status == 401);
    auto ok = rig.call("GET", "/admin/plugins");
    CHECK(ok.status == 200);
    CHECK(rig.call("GET", "/admin/nothing").status == 404);
    CHECK(rig.call("POST", "/admin/plugins").status == 405);
    CHECK(rig.call("GET", "/admin/events?status=bogus").status == 400);
    CHECK(rig.call("GET", "/admin/events?colour=red").status == 400);
}

TEST_CASE("admin: a bad percent-encoding is 401 without the token and 400 with it, never 503",
          "[admin]") {
    AdminRig rig;
    rig.up();
    rig.start_admin();
    auto ask = [&](const std::string& auth) {
        test::RawConnection c(rig.admin->port());
        c.send("GET /admin/%zz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n" + auth + "\r\n");
        return test::statuses(c.read_until_close(10s));
    };
    CHECK(ask("") == std::vector<int>{401});
    CHECK(ask("Authorization: Bearer " + std::string(kToken) + "\r\n") == std::vector<int>{400});
    CHECK_THAT(rig.log_out.str(), !Catch::Contains("level=error"));
}

TEST_CASE("admin: connections trickling bytes do not block admin requests", "[admin]") {
    AdminRig rig;
    rig.up();
    rig.start_admin();
    std::vector<std::unique_ptr<test::RawConnection>> slow;
    for (int i = 0; i < 8; ++i) {
        slow.push_back(std::make_unique<test::RawConnection>(rig.admin->port()));
        slow.back()->send("GET /admin/plugins HTTP/1.1\r\nHost: h\r\n");
    }
    for (int i = 0; i < 5; ++i) {
        for (auto& c : slow)
            c->send("X-Slow: " + std::to_string(i) + "\r\n");
        auto r = rig.call("GET", "/admin/plugins");
        CHECK(r.status == 200);
    }
}

TEST_CASE("admin: events, one event with its attempts, dead deliveries, replay",
          "[admin][replay]") {
    AdminRig rig;
    rig.up();
    rig.start_admin();
    std::string gate = rig.dir.file("gate");
    std::string ok = rig.post();
    std::string bad = rig.post(R"({"fail_unless":)" + json::quote(gate) + "}");
    REQUIRE(wait_until([&] {
        return rig.state_is(ok, DeliveryState::done) && rig.state_is(bad, DeliveryState::dead);
    }));

    auto all = rig.get_json("/admin/events");
    REQUIRE(all.find("events")->size() == 2);
    CHECK(all.find("events")->items()[0].get_string("id", "") == bad);  // newest first
    auto dead_events = rig.get_json("/admin/events?status=dead&type=enrichment.completed");
    REQUIRE(dead_events.find("events")->size() == 1);
    CHECK(dead_events.find("events")->items()[0].get_string("id", "") == bad);
    CHECK(rig.get_json("/admin/events?type=table.row.created").find("events")->size() == 0);
    CHECK(rig.get_json("/admin/events?since=2999-01-01T00:00:00Z").find("events")->size() == 0);
    CHECK(rig.get_json("/admin/events?limit=1").find("next_before")->as_string() == bad);

    auto ev = rig.get_json("/admin/events/" + bad);
    CHECK(ev.get_string("type", "") == "enrichment.completed");
    CHECK(ev.at_path("body.row_id")->is_string());
    const auto& ds = ev.find("deliveries")->items();
    REQUIRE(ds.size() == 1);
    CHECK(ds[0].get_string("state", "") == "dead");
    CHECK(ds[0].get_string("plugin", "") == "p");
    CHECK(ds[0].get_string("last_error", "").find("is missing") != std::string::npos);
    REQUIRE(ds[0].find("attempts_history")->size() == 1);
    CHECK(ds[0].find("attempts_history")->items()[0].get_string("outcome", "") == "fail");
    // Who claimed it last; no lease once it is finished.
    CHECK(ds[0].get_string("claimed_by", "") == rig.store->owner());
    CHECK(ds[0].find("lease_until")->is_null());
    CHECK(rig.call("GET", "/admin/events/evt_00000000000000000000000").status == 404);

    auto dead = rig.get_json("/admin/deliveries?state=dead");
    REQUIRE(dead.find("deliveries")->size() == 1);
    int64_t did = dead.find("deliveries")->items()[0].get_int("id", 0);

    // The CLI lists the same, and replays by plugin.
    std::string cfg = cli_config(rig.dir);
    std::string out, err;
    REQUIRE(cli({"deliveries", "list", "--config", cfg, "--admin", rig.base, "--state", "dead"},
                out, err) == 0);
    CHECK(out.find(bad) != std::string::npos);
    CHECK(out.find(ok) == std::string::npos);
    CHECK(out.find("is missing") != std::string::npos);

    // Replaying what is not dead is refused, by id.
    auto done_list = rig.get_json("/admin/deliveries?state=done");
    int64_t done_id = done_list.find("deliveries")->items()[0].get_int("id", 0);
    CHECK(rig.call("POST", "/admin/deliveries/" + std::to_string(done_id) + "/replay").status ==
          409);

    rig.dir.write("gate", "open");
    REQUIRE(cli({"replay", "--config", cfg, "--admin", rig.base, "--plugin", "p"}, out, err) == 0);
    CHECK(out == "replayed 1 dead delivery\n");
    REQUIRE(wait_until([&] { return rig.state_is(bad, DeliveryState::done); }));
    CHECK(rig.delivery(bad).id == did);

    // A wrong token: exit 4, and the CLI says what to check.
    ::setenv("ADMIN_TEST_TOKEN", "nope", 1);
    CHECK(cli({"deliveries", "list", "--config", cfg, "--admin", rig.base}, out, err) == 4);
    CHECK(err.find("admin.token") != std::string::npos);
    ::setenv("ADMIN_TEST_TOKEN", kToken, 1);
    // Nothing listening: exit 7.
    rig.stop_admin();
    CHECK(cli({"deliveries", "list", "--config", cfg, "--admin", "http://127.0.0.1:1"}, out, err) ==
          7);
    ::unsetenv("ADMIN_TEST_TOKEN");
}

TEST_CASE("admin: stored text that is not printable UTF-8 reaches JSON and the terminal escaped",
          "[admin]") {
    AdminRig rig;
    rig.up();
    rig.start_admin();
    // As a store written before the intake checked types may hold it.
    std::string id = rig.post_body("evil\x1b[2J\xff\ntype", "{}");
    auto r = rig.call("GET", "/admin/events/" + id);
    REQUIRE(r.status == 200);
    CHECK(valid_utf8(r.body));
    CHECK(json::parse(r.body).get_string("type", "") == "evil\x1b[2J\xef\xbf\xbd\ntype");

    std::string cfg = cli_config(rig.dir);
    std::string out, err;
    REQUIRE(cli({"deliveries", "list", "--config", cfg, "--admin", rig.base}, out, err) == 0);
    INFO(out);
    CHECK(out.find(id) != std::string::npos);  // listed, not "no deliveries"
    CHECK(out.find('\x1b') == std::string::npos);
    CHECK(out.find("evil\\x1b[2J") != std::string::npos);
    ::unsetenv("ADMIN_TEST_TOKEN");
}

TEST_CASE("admin CLI: an answer that is not JSON is an error, never an empty listing", "[admin]") {
    // A fake admin API answering 200 with a body that is not JSON.
    test::FakeServer fake([](Poco::Net::HTTPServerRequest&, Poco::Net::HTTPServerResponse& resp) {
        std::string body = "{\"deliveries\":[{\"id\":1,\"event_type\":\"a\xff\"";
        resp.setContentType("application/json");
        resp.sendBuffer(body.data(), body.size());
    });
    test::TempDir dir;
    std::string cfg = cli_config(dir);
    std::string out, err;
    CHECK(cli({"deliveries", "list", "--config", cfg, "--admin",
               "http://127.0.0.1:" + std::to_string(fake.port())},
              out, err) == 1);
    CHECK(out.empty());
    CHECK_THAT(err, Catch::Contains("not JSON"));
    ::unsetenv("ADMIN_TEST_TOKEN");
}

TEST_CASE("admin: pause and resume a plugin, status and counts", "[admin][pause]") {
    AdminRig rig;
    rig.up();
    rig.start_admin();
    auto r = rig.call("POST", "/admin/plugins/p/pause");
    REQUIRE(r.status == 200);
    CHECK(rig.call("POST", "/admin/plugins/nope/pause").status == 404);
    std::string id = rig.post();
    REQUIRE(wait_until([&] {
        auto p = rig.get_json("/admin/plugins").find("plugins")->items()[0];
        return p.get_int("due", 0) == 1;
    }));
    auto p = rig.get_json("/admin/plugins").find("plugins")->items()[0];
    CHECK(p.get_bool("paused", false));
    CHECK(p.get_string("kind", "") == "probe");
    CHECK(p.get_int("pending", 0) == 1);
    CHECK(rig.lines().empty());
    REQUIRE(rig.call("POST", "/admin/plugins/p/resume").status == 200);
    REQUIRE(wait_until([&] { return rig.state_is(id, DeliveryState::done); }));
    p = rig.get_json("/admin/plugins").find("plugins")->items()[0];
    CHECK_FALSE(p.get_bool("paused", true));
    CHECK(p.get_int("done", 0) == 1);
    CHECK(p.get_int("pending", -1) == 0);
}

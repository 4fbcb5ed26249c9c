// The console's server side over a real socket: sign-in with the admin token
// for a session cookie, pages refused without one, the CSRF token on every
// state-changing request, wrong tokens rate limited, the security headers,
// sign-out; and the sessions, the limiter and the redacted config on their own.
#include "admin/AdminServer.h"
#include "clay/ClayApi.h"
#include "config/ConfigView.h"
#include "console/ConsoleAssets.h"
#include "console/ConsoleSessions.h"
#include "dispatch/DispatchRig.h"

#include <catch2/catch.hpp>

using namespace clayhook;
using namespace clayhook::test;
using namespace std::chrono_literals;

namespace {

const char* kToken = "console-test-token";

struct ConsoleRig : DispatchRig {
    std::unique_ptr<AdminServer> admin;
    std::string base;

    ConsoleRig() {
        up();
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
    ~ConsoleRig() {
        admin->stop();
        admin.reset();
    }

    HttpResponse get(const std::string& path, HttpHeaders h = {}) {
        return http_exchange("GET", base + path, h, "", 10s);
    }
    HttpResponse post(const std::string& path, const std::string& body, HttpHeaders h = {}) {
        return http_exchange("POST", base + path, h, body, 10s);
    }
    HttpResponse sign_in(const std::string& token, HttpHeaders h = {}) {
        h.emplace_back("Content-Type", "application/x-www-form-urlencoded");
        return post("/console/login", "token=" + token, h);
    }
};

std::string header(const HttpResponse& r, std::string_view name) {
    const std::string* v = r.header(name);
    return v ? *v : "";
}

// "clayhook_session=<id>" from a Set-Cookie.
std::string session_cookie(const HttpResponse& r) {
    const std::string c = header(r, "Set-Cookie");
    return c.substr(0, c.find(';'));
}

}  // namespace

TEST_CASE("console: sessions expire, are removed, and stay bounded", "[console]") {
    int64_t now = 1'000'000;
    ConsoleSessions sessions(
        std::chrono::minutes(1), [&] { return now; }, 2);
    auto a = sessions.create();
    CHECK(a.id.size() == 64);
    CHECK(a.csrf.size() == 64);
    CHECK(a.id != a.csrf);
    REQUIRE(sessions.find(a.id));
    CHECK(sessions.find(a.id)->csrf == a.csrf);
    CHECK_FALSE(sessions.find(a.id.substr(0, 63)));
    now += 30'000;
    auto b = sessions.create();
    auto c = sessions.create();  // the oldest (a) makes room
    CHECK_FALSE(sessions.find(a.id));
    CHECK(sessions.find(b.id));
    sessions.remove(c.id);
    CHECK_FALSE(sessions.find(c.id));
    now += 60'000;  // b has expired
    CHECK_FALSE(sessions.find(b.id));
    CHECK(ConsoleSessions::same("abc", "abc"));
    CHECK_FALSE(ConsoleSessions::same("abc", "abd"));
    CHECK_FALSE(ConsoleSessions::same("abc", "abcd"));
}

TEST_CASE("console: wrong tokens are limited per peer for a window", "[console]") {
    int64_t now = 0;
    LoginLimiter limiter(3, std::chrono::minutes(1), [&] { return now; });
    for (int i = 0; i < 3; ++i) {
        CHECK(limiter.blocked_for("10.0.0.1") == 0);
        limiter.failed("10.0.0.1");
    }
    CHECK(limiter.blocked_for("10.0.0.1") == 60'000);
    CHECK(limiter.blocked_for("10.0.0.2") == 0);  // another peer
    now = 59'000;
    CHECK(limiter.blocked_for("10.0.0.1") == 1'000);
    now = 60'000;
    CHECK(limiter.blocked_for("10.0.0.1") == 0);
    limiter.failed("10.0.0.2");
    limiter.succeeded("10.0.0.2");  // a success forgets the failures
    limiter.failed("10.0.0.2");
    limiter.failed("10.0.0.2");
    CHECK(limiter.blocked_for("10.0.0.2") == 0);
}

TEST_CASE("console: the assets are compiled in, with their content types", "[console]") {
    for (const char* name : {"index.html", "login.html"})
        CHECK(find_console_asset(name) != nullptr);
    CHECK(find_console_asset("nope.js") == nullptr);
    CHECK(console_content_type("a.js") == "text/javascript; charset=utf-8");
    CHECK(console_content_type("a.css") == "text/css; charset=utf-8");
    CHECK(console_content_type("a.html") == "text/html; charset=utf-8");
    CHECK(console_content_type("a.bin") == "application/octet-stream");
}

TEST_CASE("console: no page without a session, sign-in sets a strict cookie, CSRF on posts",
          "[console][security]") {
    ConsoleRig rig;
    // A page without a session: to the sign-in page, with the headers.
    auto r = rig.get("/console/events");
    CHECK(r.status == 303);
    CHECK(header(r, "Location") == "/console/login");
    CHECK(header(r, "Content-Security-Policy").find("default-src 'self'") == 0);
    CHECK(header(r, "Content-Security-Policy").find("frame-ancestors 'none'") != std::string::npos);
    CHECK(header(r, "X-Content-Type-Options") == "nosniff");
    CHECK(header(r, "X-Frame-Options") == "DENY");
    // The API without a session or token: 401.
    CHECK(rig.get("/admin/plugins").status == 401);
    CHECK(rig.get("/admin/plugins", {{"Cookie", "clayhook_session=" + std::string(64, 'a')}})
              .status == 401);

    r = rig.get("/console/login");
    CHECK(r.status == 200);
    CHECK(header(r, "Content-Type") == "text/html; charset=utf-8");
    CHECK(rig.get("/console/assets/login.html").status == 200);
    CHECK(rig.get("/console/assets/nope.js").status == 404);
    CHECK(rig.get("/console/nope").status == 404);

    r = rig.sign_in("wrong");
    CHECK(r.status == 303);
    CHECK(header(r, "Location") == "/console/login?error=bad-token");
    CHECK(header(r, "Set-Cookie").empty());
    CHECK(rig.log_out.str().find("console sign-in refused: wrong token") != std::string::npos);

    r = rig.sign_in(kToken);
    CHECK(r.status == 303);
    CHECK(header(r, "Location") == "/console/");
    const std::string set = header(r, "Set-Cookie");
    CHECK(set.find("; HttpOnly") != std::string::npos);
    CHECK(set.find("; SameSite=Strict") != std::string::npos);
    CHECK(set.find("; Path=/") != std::string::npos);
    CHECK(set.find("; Max-Age=28800") != std::string::npos);
    CHECK(set.find("Secure") == std::string::npos);  // plain HTTP here
    const HttpHeaders cookie = {{"Cookie", "theme=dark; " + session_cookie(r)}};

    r = rig.get("/console/", cookie);
    CHECK(r.status == 200);
    CHECK(r.body.find("<html") != std::string::npos);
    CHECK(rig.get("/console/events/evt_00000000000000000000000", cookie).status == 200);
    auto s = json::parse(rig.get("/admin/session", cookie).body);
    const std::string csrf = s.get_string("csrf", "");
    CHECK(csrf.size() == 64);
    CHECK(rig.get("/admin/plugins", cookie).status == 200);

    // A state change with the cookie alone (what another site's form could
    // make the browser send) is refused; with the CSRF token it goes.
    r = rig.post("/admin/plugins/p/pause", "", cookie);
    CHECK(r.status == 403);
    CHECK(r.body.find("CSRF") != std::string::npos);
    HttpHeaders with_csrf = cookie;
    with_csrf.emplace_back("X-CSRF-Token", std::string(64, '0'));
    CHECK(rig.post("/admin/plugins/p/pause", "", with_csrf).status == 403);
    with_csrf.back().second = csrf;
    r = rig.post("/admin/plugins/p/pause", "", with_csrf);
    CHECK(r.status == 200);
    CHECK(rig.dispatcher->status().at(0).paused);
    // The token's clients are not asked for it.
    CHECK(rig.post("/admin/plugins/p/resume", "",
                   {{"Authorization", std::string("Bearer ") + kToken}})
              .status == 200);
    CHECK(rig.get("/admin/session", {{"Authorization", std::string("Bearer ") + kToken}}).status ==
          404);

    // The overview and the dead letters, for the console's pages.
    auto o = json::parse(rig.get("/admin/overview", cookie).body);
    CHECK(o.find("store") != nullptr);
    CHECK(o.find("intake") != nullptr);
    CHECK(o.find("history") != nullptr);
    CHECK(o.find("plugins")->size() == 1);
    CHECK(json::parse(rig.get("/admin/dead-letters", cookie).body).find("groups") != nullptr);
    CHECK(rig.post("/admin/discard", R"({"ids":[999]})", with_csrf).body.find("\"discarded\":0") !=
          std::string::npos);

    // Sign-out needs the CSRF token too, and ends the session.
    CHECK(rig.post("/console/logout", "", cookie).status == 403);
    r = rig.post("/console/logout", "", with_csrf);
    CHECK(r.status == 200);
    CHECK(header(r, "Set-Cookie").find("Max-Age=0") != std::string::npos);
    CHECK(rig.get("/console/", cookie).status == 303);
    CHECK(rig.get("/admin/plugins", cookie).status == 401);
}

TEST_CASE("console: the cookie is Secure behind a TLS proxy, and wrong tokens are rate limited",
          "[console][security]") {
    ConsoleRig rig;
    auto r = rig.sign_in(kToken, {{"X-Forwarded-Proto", "https"}});
    CHECK(header(r, "Set-Cookie").find("; Secure") != std::string::npos);
    for (int i = 0; i < 5; ++i)
        CHECK(header(rig.sign_in("wrong-" + std::to_string(i)), "Location") ==
              "/console/login?error=bad-token");
    // Now even the right token waits.
    r = rig.sign_in(kToken);
    CHECK(header(r, "Location") == "/console/login?error=rate-limited");
    CHECK(header(r, "Set-Cookie").empty());
    CHECK_FALSE(header(r, "Retry-After").empty());
    CHECK(rig.log_out.str().find("too many wrong tokens") != std::string::npos);
}

TEST_CASE("console: the config view shows references, never secret values", "[console][security]") {
    Config c;
    Secret token;
    token.ref = "${ADMIN_TOKEN}";
    token.resolved = true;
    token.origin = "env ADMIN_TOKEN";
    token.value = "very-secret-admin-token";
    c.admin.token = token;
    SourceConfig src;
    src.name = "clay";
    src.path = "/webhooks/clay";
    Secret hook = token;
    hook.ref = "file:/etc/clayhook/secret";
    hook.value = "very-secret-webhook-key";
    src.verify.secrets = {hook};
    c.sources = {src};
    PluginConfig p;
    p.name = "crm";
    p.library = "bundled:hubspot-push";
    Secret api = token;
    api.ref = "${HUBSPOT_TOKEN}";
    api.value = "very-secret-hubspot-token";
    p.secrets = {api};
    p.config_json = R"({"token":"very-secret-hubspot-token","portal":"123"})";
    c.plugins = {p};
    const std::string text = json::dump(config_view(c));
    CHECK(text.find("very-secret") == std::string::npos);
    CHECK(text.find("${ADMIN_TOKEN}") != std::string::npos);
    CHECK(text.find("file:/etc/clayhook/secret") != std::string::npos);
    CHECK(text.find(R"("token":"[redacted]")") != std::string::npos);
    CHECK(text.find(R"("portal":"123")") != std::string::npos);
}

TEST_CASE("console: a generation carries check's route warnings for the config page",
          "[console][check]") {
    DispatchRig rig;
    rig.plugin.events = std::vector<std::string>{"enrichment.completd"};  // a typo
    rig.up();
    const auto& w = rig.gen->config.route_warnings;
    auto has = [&](const std::string& text) {
        return std::find(w.begin(), w.end(), text) != w.end();
    };
    CHECK(has("plugin 'p': pattern 'enrichment.completd' matches no known event type (a typo?)"));
    CHECK(
        has("no plugin handles enrichment.completed: such events are stored and acknowledged, "
            "and nothing is done with them"));
    CHECK(w.size() == 7);  // the typo, and each of the six Clay types
}

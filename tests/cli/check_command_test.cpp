// `clayhook check` as an operator runs it: the real binary, real plugins.
#include "support/Subprocess.h"
#include "support/TempDir.h"
#include "support/TestPaths.h"

#include <clayhook/json.hpp>

#include <catch2/catch.hpp>

using namespace clayhook::test;
namespace json = clayhook::json;

namespace {

Subprocess::Options in_source_dir(std::map<std::string, std::string> env = {}) {
    Subprocess::Options o;
    o.cwd = kSourceDir;
    o.env = std::move(env);
    o.env["CLAYHOOK_PLUGIN_DIR"] = kBundledPluginDir;
    return o;
}

}  // namespace

TEST_CASE("check on the default config reports it usable and exits 0", "[cli][check]") {
    auto r = run({kClayhookBin, "check", "--config", "config/clayhook.yaml"},
                 in_source_dir({{"CLAY_WEBHOOK_SECRET", "check-test-secret-value"},
                                {"CLAYHOOK_ADMIN_TOKEN", "check-test-admin-token"}}));
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains("clay  POST /webhooks/clay"));
    CHECK_THAT(r.out, Catch::Contains("verify: hmac-sha256 (header x-clay-signature)"));
    CHECK_THAT(r.out, Catch::Contains("resolved from env CLAY_WEBHOOK_SECRET"));
    CHECK_THAT(r.out, Catch::Contains("sink  loaded: jsonl-sink 1.0.0, ABI 1.1"));
    CHECK_THAT(r.out, Catch::Contains("enrichment.completed -> sink"));
    CHECK_THAT(r.out, Catch::Contains("usable: 0 error(s)"));
    // Never a secret's value.
    CHECK(r.out.find("check-test-secret-value") == std::string::npos);
    CHECK(r.err.find("check-test-secret-value") == std::string::npos);
    CHECK(r.out.find("check-test-admin-token") == std::string::npos);
}

TEST_CASE("check --json is machine-readable and has no secret values", "[cli][check]") {
    auto r = run({kClayhookBin, "check", "--json", "--config", "config/clayhook.yaml"},
                 in_source_dir({{"CLAY_WEBHOOK_SECRET", "json-secret-value-1"},
                                {"CLAYHOOK_ADMIN_TOKEN", "json-admin-token-1"}}));
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    auto doc = json::parse(r.out);
    CHECK(doc.get_bool("ok", false));
    CHECK(doc.at_path("sources.0.scheme")->as_string() == "hmac-sha256");
    CHECK(doc.at_path("sources.0.secrets.0.resolved")->as_bool());
    CHECK(doc.at_path("plugins.0.status")->as_string() == "loaded");
    CHECK(doc.at_path("plugins.0.abi")->as_string() == "1.1");
    CHECK(doc.at_path("routes.0.event")->as_string() == "enrichment.completed");
    CHECK(doc.at_path("routes.0.plugins.0")->as_string() == "sink");
    CHECK(r.out.find("json-secret-value-1") == std::string::npos);
}

TEST_CASE("check on a misspelt key exits 1 naming file and line", "[cli][check]") {
    TempDir dir;
    auto file = dir.write("typo.yaml", R"(sources:
  - name: clay
    path: /webhooks/clay
    verify:
      scheme: hmac-sha256
      secrets: ["${CLAY_WEBHOOK_SECRET}"]
    max_body_byte: 1MiB
)");
    auto r = run({kClayhookBin, "check", "--config", file}, in_source_dir());
    INFO(r.out << r.err);
    CHECK(r.code == 1);
    CHECK_THAT(r.out, Catch::Contains(file + ":7:5: sources[0].max_body_byte: unknown key "
                                             "(did you mean 'max_body_bytes'?)"));
    CHECK_THAT(r.out, Catch::Contains("NOT usable"));
}

TEST_CASE("check reports unresolved secrets, refused plugins and routing warnings",
          "[cli][check]") {
    TempDir dir;
    auto file = dir.write("c.yaml", std::string(R"(admin: {enabled: false}
sources:
  - name: clay
    path: /webhooks/clay
    verify:
      scheme: hmac-sha256
      secrets: ["${CLAYHOOK_CHECK_UNSET}"]
plugins:
  - name: good
    library: )") + kFixturePluginDir + R"(/sdk_plugin.so
    events: ["enrichmnt.*", "enrichment.completed"]
  - name: old
    library: )" + kFixturePluginDir + R"(/abi_major.so
  - name: bad-config
    library: )" + kFixturePluginDir + R"(/create_fails.so
)");
    auto r = run({kClayhookBin, "check", "--config", file}, in_source_dir());
    INFO(r.out << r.err);
    CHECK(r.code == 1);
    CHECK_THAT(r.out, Catch::Contains("CLAYHOOK_CHECK_UNSET is not set"));
    CHECK_THAT(r.out, Catch::Contains("old  refused"));
    CHECK_THAT(r.out, Catch::Contains("plugin ABI 2.0 but this host speaks ABI 1.1"));
    CHECK_THAT(r.out, Catch::Contains("api_key is missing from the plugin config"));
    CHECK_THAT(r.out, Catch::Contains("good  loaded: sdk-fixture 1.0.0"));
    CHECK_THAT(r.out, Catch::Contains("pattern 'enrichmnt.*' matches no known event type"));
    CHECK_THAT(r.out, Catch::Contains("no plugin handles workflow.completed"));
    CHECK_THAT(r.out, Catch::Contains("3 error(s)"));
}

TEST_CASE("usage errors exit 2", "[cli]") {
    auto r = run({kClayhookBin, "frobnicate"}, in_source_dir());
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains("unknown command 'frobnicate'"));
    auto v = run({kClayhookBin, "version"}, in_source_dir());
    CHECK(v.code == 0);
    CHECK_THAT(v.out, Catch::Contains("plugin ABI 1.1"));
}

TEST_CASE("check shows the store without the password, and warns of an unverified remote server",
          "[cli][check]") {
    TempDir dir;
    const std::string config = dir.write("c.yaml", R"(admin: {enabled: false}
store: {engine: postgres, postgres_url: "${CHECK_PG_URL}", host_id: alpha}
dispatch: {lease: 12s, poll_interval: 500ms}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["${CHECK_SECRET}"]}
)");
    auto check = [&](const std::string& url) {
        return run({kClayhookBin, "check", "--config", config},
                   in_source_dir({{"CHECK_PG_URL", url}, {"CHECK_SECRET", "s3cret-value"}}));
    };
    auto remote = check("postgresql://clay:Pg-Passw0rd@db.internal:6432/hooks");
    INFO(remote.out << remote.err);
    CHECK(remote.code == 0);
    CHECK_THAT(remote.out, Catch::Contains("postgres  postgresql://clay@db.internal:6432/hooks"));
    CHECK_THAT(remote.out, Catch::Contains("postgres_url ${CHECK_PG_URL}: resolved from env"));
    CHECK_THAT(remote.out, Catch::Contains("host_id alpha; lease 12s, poll every 500ms"));
    CHECK_THAT(remote.out, Catch::Contains("store.postgres_url reaches db.internal with sslmode "
                                           "prefer (libpq's default)"));
    CHECK(remote.out.find("Pg-Passw0rd") == std::string::npos);

    auto verified = check(
        "postgresql://clay:Pg-Passw0rd@db.internal/hooks?sslmode=verify-full&sslrootcert=/ca.pem");
    CHECK(verified.code == 0);
    CHECK(verified.out.find("store.postgres_url reaches") == std::string::npos);
    auto local = check("postgresql://clay@127.0.0.1:5432/hooks");
    CHECK(local.out.find("store.postgres_url reaches") == std::string::npos);

    // Not parsable: an error, and the text is not echoed.
    auto bad = check("host=db.internal password=Pg-Passw0rd bogus");
    CHECK(bad.code == 1);
    CHECK_THAT(bad.out, Catch::Contains("not a valid PostgreSQL URL"));
    CHECK(bad.out.find("Pg-Passw0rd") == std::string::npos);
    CHECK(bad.err.find("Pg-Passw0rd") == std::string::npos);

    auto sqlite = run({kClayhookBin, "check", "--config", "config/clayhook.yaml"},
                      in_source_dir({{"CLAY_WEBHOOK_SECRET", "x"}, {"CLAYHOOK_ADMIN_TOKEN", "y"}}));
    CHECK_THAT(sqlite.out, Catch::Contains("\nstore\n  sqlite  " + std::string(kSourceDir) +
                                           "/var/clayhook.db\n"));
    CHECK_THAT(sqlite.out, Catch::Contains("one process at a time (lock file"));
}

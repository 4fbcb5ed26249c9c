// Config errors name file, line, column and key; typos never pass silently.
#include "config/ConfigError.h"
#include "config/ConfigLoader.h"
#include "support/TempDir.h"
#include "support/TestPaths.h"

#include <catch2/catch.hpp>
#include <clayhook/json.hpp>

#include <chrono>
#include <cstdlib>

using namespace clayhook;
using clayhook::test::TempDir;

namespace {

const char* kMinimal = R"(version: 1
admin:
  enabled: false
sources:
  - name: clay
    path: /webhooks/clay
    verify:
      scheme: hmac-sha256
      secrets: ["${CLAYHOOK_TEST_SECRET}"]
)";

struct EnvVar {
    EnvVar(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
    ~EnvVar() { ::unsetenv(name_); }
    const char* name_;
};

LoadOptions opts() {
    LoadOptions o;
    o.bundled_plugin_dirs = {test::kBundledPluginDir};
    return o;
}

// Loads `yaml`, expects a ConfigError, returns it.
ConfigError error_of(const std::string& yaml) {
    TempDir dir;
    auto file = dir.write("c.yaml", yaml);
    try {
        load_config(file, opts());
    } catch (const ConfigError& e) {
        CHECK(e.position().file == file);
        return e;
    }
    FAIL("config was accepted:\n" << yaml);
    throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("a minimal config loads with the documented defaults", "[config]") {
    EnvVar secret("CLAYHOOK_TEST_SECRET", "0123456789abcdef");
    TempDir dir;
    auto c = load_config(dir.write("c.yaml", kMinimal), opts());
    REQUIRE(c.sources.size() == 1);
    const auto& s = c.sources[0];
    CHECK(s.verify.scheme == VerifyScheme::hmac_sha256);
    CHECK(s.verify.header == "x-clay-signature");
    CHECK(s.max_body_bytes == 1024 * 1024);
    CHECK(s.event_type.from == EventTypeFrom::body_field);
    CHECK(s.event_type.field == "event");
    CHECK(s.idempotency.fields == std::vector<std::string>{"event", "row_id", "timestamp"});
    REQUIRE(s.verify.secrets.size() == 1);
    CHECK(s.verify.secrets[0].resolved);
    CHECK(s.verify.secrets[0].value == "0123456789abcdef");
    CHECK(s.verify.secrets[0].origin == "env CLAYHOOK_TEST_SECRET");
    CHECK(c.listener.port == 8080);
    CHECK(c.store.durable);
    CHECK(c.dispatch.retry.max_attempts == 10);
    CHECK(c.plugins.empty());
}

TEST_CASE("a misspelt key is an error at its line and column, with a suggestion", "[config]") {
    auto e = error_of(R"(sources:
  - name: clay
    path: /webhooks/clay
    verify:
      schem: hmac-sha256
      secrets: ["${X}"]
)");
    CHECK(e.position().line == 5);
    CHECK(e.position().column == 7);
    CHECK(e.key() == "sources[0].verify.schem");
    CHECK_THAT(std::string(e.what()),
               Catch::Contains(":5:7: sources[0].verify.schem: unknown key"));
    CHECK_THAT(e.message(), Catch::Contains("did you mean 'scheme'?"));
}

TEST_CASE("an unknown top-level key lists what is allowed", "[config]") {
    auto e = error_of("sources: []\nfrobnicate: 1\n");
    CHECK(e.position().line == 2);
    CHECK(e.key() == "frobnicate");
    CHECK_THAT(e.message(), Catch::Contains("expected one of"));
}

TEST_CASE("YAML syntax errors carry the parser's position", "[config]") {
    auto e = error_of("sources:\n  - name: [unclosed\n");
    CHECK(e.position().line >= 2);
    CHECK_THAT(e.message(), Catch::Contains("YAML syntax"));
}

TEST_CASE("wrong types and ranges are errors naming the key", "[config]") {
    std::string base = std::string(kMinimal);
    auto e1 = error_of(base + "listener:\n  port: 70000\n");
    CHECK(e1.key() == "listener.port");
    CHECK(e1.position().line == 11);
    CHECK_THAT(e1.message(), Catch::Contains("between 0 and 65535"));
    auto e2 = error_of(base + "listener:\n  keep_alive: maybe\n");
    CHECK(e2.key() == "listener.keep_alive");
    auto e3 = error_of(base + "listener:\n  read_timeout: 10 parsecs\n");
    CHECK_THAT(e3.message(), Catch::Contains("duration"));
    auto e4 = error_of(base + "dispatch:\n  retry:\n    backoff_base: 10m\n    backoff_cap: 1m\n");
    CHECK_THAT(e4.message(), Catch::Contains("backoff_cap must not be below backoff_base"));
    auto e5 = error_of(base + "listener: [1, 2]\n");
    CHECK_THAT(e5.message(), Catch::Contains("expected a mapping"));
}

TEST_CASE("missing required keys are named", "[config]") {
    auto e =
        error_of("sources:\n  - name: clay\n    verify: {scheme: token, secrets: [\"${X}\"]}\n");
    CHECK(e.key() == "sources[0].path");
    CHECK_THAT(e.message(), Catch::Contains("required key is missing"));
    auto e2 = error_of("admin: {enabled: false}\n");
    CHECK(e2.key() == "sources");
}

TEST_CASE("duplicate keys, names and paths are errors", "[config]") {
    auto e = error_of(std::string(kMinimal) + "log: {level: info}\nlog: {level: debug}\n");
    CHECK_THAT(e.message(), Catch::Contains("duplicate key"));
    auto e2 = error_of(std::string(kMinimal) + R"(  - name: clay
    path: /other
    verify: {scheme: token, secrets: ["${X}"]}
)");
    CHECK(e2.key() == "sources[1].name");
    auto e3 = error_of(std::string(kMinimal) + R"(  - name: other
    path: /webhooks/clay
    verify: {scheme: token, secrets: ["${X}"]}
)");
    CHECK(e3.key() == "sources[1].path");
}

TEST_CASE("each scheme gets its default headers and only its own keys", "[config]") {
    TempDir dir;
    auto c = load_config(dir.write("c.yaml", R"(admin: {enabled: false}
sources:
  - name: ts
    path: /ts
    verify: {scheme: hmac-sha256-timestamp, tolerance: 2m, secrets: ["${A}", "${B}"]}
  - name: tok
    path: /tok
    verify: {scheme: token, secrets: ["${A}"]}
    event_type: {from: fixed, value: enrichment.completed}
  - name: sw
    path: /sw
    verify: {scheme: standard-webhooks, secrets: ["${A}"]}
    event_type: {from: header, header: X-Event-Type}
)"),
                         opts());
    REQUIRE(c.sources.size() == 3);
    CHECK(c.sources[0].verify.timestamp_header == "x-clay-timestamp");
    CHECK(c.sources[0].verify.tolerance == std::chrono::minutes(2));
    CHECK(c.sources[0].verify.secrets.size() == 2);
    CHECK(c.sources[1].verify.header == "x-clay-webhook-auth");
    CHECK(c.sources[1].event_type.value == "enrichment.completed");
    CHECK(c.sources[2].verify.header == "webhook-signature");
    CHECK(c.sources[2].idempotency.header == "webhook-id");
    CHECK(c.sources[2].event_type.header == "x-event-type");

    auto e = error_of(R"(sources:
  - name: a
    path: /a
    verify: {scheme: hmac-sha256, tolerance: 5m, secrets: ["${A}"]}
)");
    CHECK(e.key() == "sources[0].verify.tolerance");
    CHECK_THAT(e.message(), Catch::Contains("carries no timestamp"));
    auto e2 = error_of(R"(sources:
  - name: a
    path: /a
    verify: {scheme: hmac-sha512, secrets: ["${A}"]}
)");
    CHECK_THAT(e2.message(), Catch::Contains("expected one of: hmac-sha256"));
}

TEST_CASE("a secret written in clear is refused", "[config][security]") {
    auto e = error_of(R"(sources:
  - name: a
    path: /a
    verify:
      scheme: hmac-sha256
      secrets:
        - hunter2-is-my-password
)");
    CHECK(e.position().line == 7);
    CHECK_THAT(e.message(), Catch::Contains("${ENV_VAR}, file:PATH or credential:NAME"));
    // The error does not repeat the value it refused.
    CHECK(std::string(e.what()).find("hunter2") == std::string::npos);
}

TEST_CASE("plugin entries: bundled lookup, config as JSON, secrets inside", "[config]") {
    EnvVar token("CLAYHOOK_TEST_TOKEN", "tok-123456");
    TempDir dir;
    auto c = load_config(dir.write("c.yaml", std::string(kMinimal) + R"(plugins:
  - name: sink
    library: bundled:jsonl-sink
    events: ["enrichment.*"]
    concurrency: 2
    retry: {max_attempts: 3}
    config:
      path: /tmp/x.jsonl
      count: 12
      ratio: 0.5
      quoted: "12"
      flag: true
      nothing: ~
      list: [a, 1]
      token: ${CLAYHOOK_TEST_TOKEN}
  - name: missing
    library: bundled:no-such-plugin
  - name: local
    library: plugins/mine.so
    enabled: false
)"),
                         opts());
    REQUIRE(c.plugins.size() == 3);
    const auto& p = c.plugins[0];
    CHECK(p.library_path == std::string(test::kBundledPluginDir) + "/jsonl-sink.so");
    CHECK(p.events == std::vector<std::string>{"enrichment.*"});
    CHECK(p.concurrency == 2);
    CHECK(p.retry.max_attempts == 3);
    CHECK(p.retry.backoff_base == c.dispatch.retry.backoff_base);
    CHECK(p.config_json ==
          R"({"path":"/tmp/x.jsonl","count":12,"ratio":0.5,"quoted":"12","flag":true,)"
          R"("nothing":null,"list":["a",1],"token":"tok-123456"})");
    REQUIRE(p.secrets.size() == 1);
    CHECK(p.secrets[0].ref == "${CLAYHOOK_TEST_TOKEN}");
    CHECK(c.plugins[1].library_path.empty());
    CHECK_THAT(c.plugins[1].library_error,
               Catch::Contains("bundled plugin 'no-such-plugin' not found"));
    CHECK_FALSE(c.plugins[2].enabled);
    CHECK(c.plugins[2].library_path ==
          (std::filesystem::current_path() / "plugins/mine.so").string());
}

TEST_CASE("sizes and durations accept their units", "[config]") {
    TempDir dir;
    auto c = load_config(dir.write("c.yaml", std::string(kMinimal) + R"(    max_body_bytes: 100KB
listener: {read_timeout: 250ms}
store: {dedup_retention: 2d}
dispatch: {call_timeout: 90}
)"),
                         opts());
    CHECK(c.sources[0].max_body_bytes == 100 * 1024);
    CHECK(c.listener.read_timeout == std::chrono::milliseconds(250));
    CHECK(c.store.dedup_retention == std::chrono::hours(48));
    CHECK(c.dispatch.call_timeout == std::chrono::seconds(90));
}

TEST_CASE("listener.max_body_memory: 256 MiB by default, 0 for none, never below a source's cap",
          "[config][body-budget]") {
    EnvVar secret("CLAYHOOK_TEST_SECRET", "0123456789abcdef");
    TempDir dir;
    CHECK(load_config(dir.write("a.yaml", kMinimal), opts()).listener.max_body_memory == 256ull
                                                                                             << 20);
    CHECK(
        load_config(dir.write("b.yaml", std::string(kMinimal) + "listener: {max_body_memory: 0}\n"),
                    opts())
            .listener.max_body_memory == 0);
    // 512 KiB cannot hold one of the source's 1 MiB bodies (its default cap).
    const auto e = error_of(std::string(kMinimal) + "listener: {max_body_memory: 512KiB}\n");
    CHECK(e.key() == "listener.max_body_memory");
    CHECK_THAT(e.message(), Catch::Contains("source 'clay' accepts bodies of up to 1048576 bytes"));
    // The source's own value, when it sets one, is where the error points.
    const auto e2 = error_of(std::string(kMinimal) + "    max_body_bytes: 2MiB\n" +
                             "listener: {max_body_memory: 1MiB}\n");
    CHECK(e2.key() == "sources[0].max_body_bytes");
}

TEST_CASE("an enabled admin API needs a token", "[config][security]") {
    auto e = error_of(R"(admin: {port: 9000}
sources:
  - name: a
    path: /a
    verify: {scheme: token, secrets: ["${A}"]}
)");
    CHECK(e.key() == "admin.token");
    CHECK(e.position().line == 1);
    CHECK_THAT(e.message(), Catch::Contains("required while the admin API is enabled"));
    // The admin API is on by default: leaving the block out needs a token too.
    auto e2 = error_of(R"(sources:
  - name: a
    path: /a
    verify: {scheme: token, secrets: ["${A}"]}
)");
    CHECK(e2.key() == "admin.token");
}

TEST_CASE("sizes and durations that overflow are errors, not wrap-arounds", "[config]") {
    auto e = error_of(std::string(kMinimal) + "    max_body_bytes: 17592186044417MiB\n");
    CHECK(e.key() == "sources[0].max_body_bytes");
    CHECK_THAT(e.message(), Catch::Contains("must be at most"));
    auto e2 = error_of(std::string(kMinimal) + "listener: {read_timeout: 999999999999d}\n");
    CHECK_THAT(e2.message(), Catch::Contains("longer than ten years"));
}

TEST_CASE("quoted strings in a plugin's config are never secret references", "[config]") {
    TempDir dir;
    ::setenv("CLAYHOOK_TEST_Q", "resolved-value", 1);
    auto c = load_config(dir.write("c.yaml", std::string(kMinimal) + R"(plugins:
  - name: p
    library: x.so
    config:
      a: "file:keep-me"
      b: "${CLAYHOOK_TEST_Q}"
      c: file:///etc/hostname
      d: ${CLAYHOOK_TEST_Q}
)"),
                         opts());
    ::unsetenv("CLAYHOOK_TEST_Q");
    CHECK(
        c.plugins[0].config_json ==
        R"({"a":"file:keep-me","b":"${CLAYHOOK_TEST_Q}","c":"file:///etc/hostname","d":"resolved-value"})");
}

namespace {

// A plugin config whose YAML aliases nest `levels` deep, each level a list of
// `width` uses of the one before: width^(levels + 1) values once expanded,
// from a few hundred bytes of YAML ("billion laughs").
std::string alias_bomb(int levels, int width) {
    std::string y = "      l0: &l0 [";
    for (int i = 0; i < width; ++i)
        y += i ? ", lol" : "lol";
    y += "]\n";
    for (int l = 1; l <= levels; ++l) {
        y += "      l" + std::to_string(l) + ": &l" + std::to_string(l) + " [";
        for (int i = 0; i < width; ++i)
            y += (i ? ", *l" : "*l") + std::to_string(l - 1);
        y += "]\n";
    }
    return y;
}

const char* kTwoPlugins = R"(plugins:
  - name: fine
    library: x.so
    config: {a: 1}
  - name: bomb
    library: x.so
    config:
)";  // the second plugin's config starts on line 17 of kMinimal + this

}  // namespace

TEST_CASE("YAML aliases in a plugin's config cannot expand without bound", "[config][security]") {
    // 9^7 = 4.8 million values from 500 bytes: far over the cap of 100000
    // values, and small enough that an unbounded conversion still finishes
    // (in seconds, accepting it).
    auto start = std::chrono::steady_clock::now();
    auto e = error_of(std::string(kMinimal) + kTwoPlugins + alias_bomb(6, 9));
    CHECK(e.key() == "plugins[1].config");
    CHECK(e.position().line == 17);
    CHECK(e.position().column == 7);
    CHECK_THAT(e.message(), Catch::Contains("more than 100000 values"));
    CHECK_THAT(std::string(e.what()), Catch::Contains(":17:7: plugins[1].config: "));
    // 9^13 (2.5 trillion) values from under 1 KB: refused as fast.
    auto e2 = error_of(std::string(kMinimal) + kTwoPlugins + alias_bomb(12, 9));
    CHECK(e2.key() == "plugins[1].config");
    CHECK_THAT(e2.message(), Catch::Contains("more than 100000 values"));
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(took < std::chrono::seconds(2));
}

TEST_CASE("a long string used many times through aliases is capped at 1 MiB of JSON",
          "[config][security]") {
    // 61 values but 1.2 MB of JSON.
    std::string y = std::string(kMinimal) + kTwoPlugins + "      s: &s " +
                    std::string(20'000, 'x') + "\n      many: [";
    for (int i = 0; i < 60; ++i)
        y += i ? ", *s" : "*s";
    y += "]\n";
    auto e = error_of(y);
    CHECK(e.key() == "plugins[1].config");
    CHECK(e.position().line == 17);
    CHECK_THAT(e.message(), Catch::Contains("more than 1 MiB"));
}

TEST_CASE("a YAML alias inside its own anchor is refused, not followed forever",
          "[config][security]") {
    for (std::string loop : {std::string("      loop: &loop\n        again: *loop\n"),
                             std::string("      loop: &loop [1, *loop]\n")}) {
        INFO(loop);
        auto e = error_of(std::string(kMinimal) + kTwoPlugins + loop);
        CHECK(e.key() == "plugins[1].config");
        CHECK(e.position().line == 17);
        CHECK_THAT(e.message(), Catch::Contains("nests deeper than 256 levels"));
    }
}

TEST_CASE("a plugin's config nests as deep as plugins can parse, and no deeper", "[config]") {
    // The config mapping is level 1; 255 lists inside it make 256 levels, the
    // SDK JSON parser's limit.
    auto nested = [](int lists) {
        return std::string(kMinimal) + kTwoPlugins + "      deep: " + std::string(lists, '[') +
               std::string(lists, ']') + "\n";
    };
    TempDir dir;
    auto c = load_config(dir.write("c.yaml", nested(255)), opts());
    REQUIRE(c.plugins.size() == 2);
    CHECK(c.plugins[1].config_json ==
          R"({"deep":)" + std::string(255, '[') + std::string(255, ']') + "}");
    CHECK_NOTHROW(json::parse(c.plugins[1].config_json));
    auto e = error_of(nested(256));
    CHECK(e.key() == "plugins[1].config");
    CHECK_THAT(e.message(), Catch::Contains("nests deeper than 256 levels"));
}

TEST_CASE("plugin configs within the caps load whole, aliases expanded", "[config]") {
    EnvVar token("CLAYHOOK_TEST_TOKEN", "tok-123456");
    // 50 uses of a 1000-entry list: 50000 values, about 300 KB of JSON.
    std::string y = std::string(kMinimal) + kTwoPlugins + "      list: &list [";
    for (int i = 0; i < 1000; ++i)
        y += (i ? ", " : "") + std::to_string(i);
    y += "]\n      uses: [";
    for (int i = 0; i < 50; ++i)
        y += i ? ", *list" : "*list";
    y += "]\n      key: &key ${CLAYHOOK_TEST_TOKEN}\n      again: [*key, *key]\n";
    TempDir dir;
    auto c = load_config(dir.write("c.yaml", y), opts());
    REQUIRE(c.plugins.size() == 2);
    const auto& json = c.plugins[1].config_json;
    std::string list = "[";
    for (int i = 0; i < 1000; ++i)
        list += (i ? "," : "") + std::to_string(i);
    list += "]";
    std::string uses = "[";
    for (int i = 0; i < 50; ++i)
        uses += (i ? "," : "") + list;
    uses += "]";
    CHECK(json == R"({"list":)" + list + R"(,"uses":)" + uses +
                      R"(,"key":"tok-123456","again":["tok-123456","tok-123456"]})");
    // A secret used through an alias is one reference, resolved once.
    REQUIRE(c.plugins[1].secrets.size() == 1);
    CHECK(c.plugins[1].secrets[0].ref == "${CLAYHOOK_TEST_TOKEN}");
    CHECK(c.plugins[1].secrets[0].pos.line == 19);
}

TEST_CASE("the default config loads", "[config]") {
    EnvVar s("CLAY_WEBHOOK_SECRET", "default-config-test-secret");
    EnvVar t("CLAYHOOK_ADMIN_TOKEN", "default-config-admin-token");
    auto c = load_config(std::string(test::kSourceDir) + "/config/clayhook.yaml", opts());
    CHECK(c.sources.size() == 1);
    CHECK(c.plugins.size() == 1);
    CHECK(c.plugins[0].library_path.find("jsonl-sink.so") != std::string::npos);
    for (const Secret* sec : c.all_secrets())
        CHECK(sec->resolved);
    CHECK_NOTHROW(require_secrets(c));
}

TEST_CASE("a source cannot take the host's own endpoints", "[config]") {
    auto e = error_of(R"(admin: {enabled: false}
sources:
  - name: a
    path: /metrics
    verify: {scheme: token, secrets: ["${A}"]}
)");
    CHECK(e.key() == "sources[0].path");
    CHECK_THAT(e.message(), Catch::Contains("the host's own endpoint"));
}

TEST_CASE("dispatch keys: shutdown_timeout, per-plugin batch_linger, ordering", "[config]") {
    TempDir dir;
    auto c = load_config(dir.write("c.yaml", std::string(kMinimal) + R"(dispatch:
  batch_linger: 20ms
  shutdown_timeout: 3s
plugins:
  - name: a
    library: bundled:jsonl-sink
    ordered: true
    batch_linger: 200ms
  - name: b
    library: bundled:jsonl-sink
    ordered: true
    ordering_key: data.company.domain
  - name: c
    library: bundled:jsonl-sink
)"),
                         opts());
    CHECK(c.dispatch.batch_linger == std::chrono::milliseconds(20));
    CHECK(c.dispatch.shutdown_timeout == std::chrono::seconds(3));
    REQUIRE(c.plugins.size() == 3);
    CHECK(c.plugins[0].ordered);
    CHECK(c.plugins[0].ordering_key == "row_id");
    CHECK(c.plugins[0].batch_linger == std::chrono::milliseconds(200));
    CHECK(c.plugins[1].ordering_key == "data.company.domain");
    CHECK_FALSE(c.plugins[1].batch_linger.has_value());
    CHECK_FALSE(c.plugins[2].ordered);

    // An ordering key without ordered: true is a mistake, named where it is.
    try {
        load_config(dir.write("d.yaml", std::string(kMinimal) + R"(plugins:
  - name: a
    library: bundled:jsonl-sink
    ordering_key: row_id
)"),
                    opts());
        FAIL("loaded");
    } catch (const ConfigError& e) {
        CHECK_THAT(
            std::string(e.what()),
            Catch::Contains("plugins[0].ordering_key: only means something with ordered: true"));
    }
}

TEST_CASE("retention: defaults, forever, and events that outlive their dedup records",
          "[config][retention]") {
    TempDir dir;
    auto load = [&](const std::string& store) {
        return load_config(dir.write("c.yaml", std::string(kMinimal) + "store: " + store + "\n"),
                           opts());
    };
    auto c = load("{}");
    CHECK(c.store.retention == std::chrono::hours(24 * 7));
    CHECK(c.store.dead_retention == std::chrono::hours(24 * 30));
    // Seconds are accepted (tests, soaks); dead_retention follows a longer retention.
    c = load("{retention: 3s, dedup_retention: 2s}");
    CHECK(c.store.retention == std::chrono::seconds(3));
    CHECK(c.store.dead_retention == std::chrono::hours(24 * 30));
    c = load("{retention: 60d}");
    CHECK(c.store.dead_retention == std::chrono::hours(24 * 60));
    c = load("{retention: forever}");
    CHECK(c.store.retention.count() == 0);
    CHECK(c.store.dead_retention.count() == 0);
    c = load("{retention: 8d, dead_retention: forever}");
    CHECK(c.store.dead_retention.count() == 0);

    auto e = error_of(std::string(kMinimal) + "store:\n  retention: 1d\n");
    CHECK(e.key() == "store.retention");
    CHECK(e.position().line == 11);
    CHECK_THAT(e.message(), Catch::Contains("at least store.dedup_retention (604800s)"));
    CHECK_THAT(e.message(), Catch::Contains("stored and delivered again"));
    e = error_of(std::string(kMinimal) + "store: {dedup_retention: 8d}\n");
    CHECK(e.key() == "store.dedup_retention");
    CHECK_THAT(e.message(), Catch::Contains("not be longer than store.retention (604800s"));
    e = error_of(std::string(kMinimal) + "store: {retention: 8d, dead_retention: 7d}\n");
    CHECK(e.key() == "store.dead_retention");
    CHECK_THAT(e.message(), Catch::Contains("at least store.retention"));
    e = error_of(std::string(kMinimal) + "store: {retention: forever, dead_retention: 30d}\n");
    CHECK(e.key() == "store.dead_retention");
    e = error_of(std::string(kMinimal) + "store: {retention: 500ms, dedup_retention: 1s}\n");
    CHECK(e.key() == "store.retention");
    CHECK_THAT(e.message(), Catch::Contains("at least 1000ms"));
    e = error_of(std::string(kMinimal) + "store: {retention: always}\n");
    CHECK(e.key() == "store.retention");
}

TEST_CASE("store.min_free_space takes a size, 0 turns the reserve off", "[config][full-disk]") {
    TempDir dir;
    auto c = load_config(dir.write("c.yaml", std::string(kMinimal) + "store: {}\n"), opts());
    CHECK(c.store.min_free_space == 64ULL * 1024 * 1024);
    c = load_config(dir.write("c.yaml", std::string(kMinimal) + "store: {min_free_space: 0}\n"),
                    opts());
    CHECK(c.store.min_free_space == 0);
    auto e = error_of(std::string(kMinimal) + "store: {min_free_space: 2TB}\n");
    CHECK(e.key() == "store.min_free_space");
}

TEST_CASE("store.journal: on by default, a boolean, refused otherwise", "[config][journal]") {
    TempDir dir;
    auto c = load_config(dir.write("c.yaml", std::string(kMinimal) + "store: {}\n"), opts());
    CHECK(c.store.journal);
    c = load_config(dir.write("c.yaml", std::string(kMinimal) + "store: {journal: false}\n"),
                    opts());
    CHECK_FALSE(c.store.journal);
    auto e = error_of(std::string(kMinimal) + "store: {journal: maybe}\n");
    CHECK(e.key() == "store.journal");
}

TEST_CASE("log.format: logfmt by default, json accepted, anything else refused at its position",
          "[config][log]") {
    EnvVar secret("CLAYHOOK_TEST_SECRET", "0123456789abcdef");
    TempDir dir;
    CHECK(load_config(dir.write("default.yaml", kMinimal), opts()).log.format == "logfmt");
    auto c = load_config(
        dir.write("json.yaml", std::string(kMinimal) + "log:\n  level: debug\n  format: json\n"),
        opts());
    CHECK(c.log.format == "json");
    CHECK(c.log.level == "debug");
    CHECK(load_config(dir.write("logfmt.yaml", std::string(kMinimal) + "log: {format: logfmt}\n"),
                      opts())
              .log.format == "logfmt");

    auto e = error_of(std::string(kMinimal) + "log:\n  level: info\n  format: xml\n");
    CHECK(e.key() == "log.format");
    CHECK(e.position().line == 12);
    CHECK(e.position().column == 11);
    CHECK_THAT(e.message(), Catch::Contains("unknown value 'xml' (expected one of: logfmt, json)"));
    auto e2 = error_of(std::string(kMinimal) + "log:\n  formatt: json\n");
    CHECK(e2.key() == "log.formatt");
    CHECK_THAT(e2.message(), Catch::Contains("did you mean 'format'?"));
}

TEST_CASE("listener.server: events by default, threads with TLS, events with TLS refused",
          "[config]") {
    EnvVar secret("CLAYHOOK_TEST_SECRET", "0123456789abcdef");
    TempDir dir;
    auto c = load_config(dir.write("c.yaml", kMinimal), opts());
    CHECK(c.listener.server == ListenerServer::automatic);
    CHECK(c.listener.loops == 0);
    CHECK(c.listener.event_loops());
    auto cert = dir.write("c.pem", "x");
    auto key = dir.write("k.pem", "x");
    const std::string tls = "  tls: {cert_file: " + cert + ", key_file: " + key + "}\n";
    auto t = load_config(dir.write("t.yaml", std::string(kMinimal) + "listener:\n" + tls), opts());
    CHECK_FALSE(t.listener.event_loops());  // auto picks the thread server for TLS
    auto l = load_config(
        dir.write("l.yaml", std::string(kMinimal) + "listener:\n  server: threads\n  loops: 3\n"),
        opts());
    CHECK(l.listener.server == ListenerServer::threads);
    CHECK(l.listener.loops == 3);
    CHECK_FALSE(l.listener.event_loops());

    auto e = error_of(std::string(kMinimal) + "listener:\n  server: events\n" + tls);
    CHECK(e.key() == "listener.server");
    CHECK(e.position().line == 11);
    CHECK_THAT(e.what(), Catch::Contains("does not serve TLS"));
    auto bad = error_of(std::string(kMinimal) + "listener:\n  server: epoll\n");
    CHECK(bad.key() == "listener.server");
    auto many = error_of(std::string(kMinimal) + "listener:\n  loops: 65\n");
    CHECK(many.key() == "listener.loops");
}

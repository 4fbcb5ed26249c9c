// ABI 1.1: a plugin's declared config checked by the host as strictly as its
// own (positions, suggestions, types, required keys, secrets only as
// references), defaults filled in, units converted; handle_batch without
// handle and unfilled results; and a 1.0 plugin binary still loading.
#include "config/ConfigError.h"
#include "config/ConfigLoader.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "plugins/ConfigSchema.h"
#include "plugins/LoadedPlugin.h"
#include "plugins/PluginInstance.h"
#include "plugins/PluginLibrary.h"
#include "plugins/PluginWorker.h"
#include "support/TempDir.h"
#include "support/TestPaths.h"

#include <clayhook/json.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <iterator>
#include <sstream>

using namespace clayhook;
using clayhook::test::TempDir;

namespace {

std::string fixture(const std::string& name) {
    return std::string(test::kFixturePluginDir) + "/" + name + ".so";
}

struct Env {
    TempDir dir;
    std::ostringstream log_out;
    Logger log{log_out, Level::debug};
    Metrics metrics;
};

// A config whose one plugin is the sdk_config fixture with `config_yaml`
// (indented by 6) under config:.
std::string yaml_with(const std::string& config_yaml) {
    return "version: 1\nadmin: {enabled: false}\nsources:\n  - name: clay\n"
           "    path: /webhooks/clay\n    verify: {scheme: hmac-sha256, secrets: "
           "[\"${CLAYHOOK_SCHEMA_SECRET}\"]}\nplugins:\n  - name: conf\n    library: " +
           fixture("sdk_config") + "\n    isolation: in-process\n    config:\n" + config_yaml;
}

// Loads the config and creates the plugin; the config it got (from its log
// line), or the refusal.
std::string create(Env& env, const std::string& config_yaml) {
    ::setenv("CLAYHOOK_SCHEMA_SECRET", "0123456789abcdef", 1);
    const std::string file = env.dir.write("c.yaml", yaml_with(config_yaml));
    Config c = load_config(file, LoadOptions{});
    auto lib = PluginLibrary::load("conf", fixture("sdk_config"), env.dir.path().string());
    try {
        auto inst = PluginInstance::create(lib, c.plugins.at(0), env.log, env.metrics);
    } catch (const PluginError& e) {
        return std::string("refused: ") + e.what();
    }
    const std::string out = env.log_out.str();
    auto at = out.find("config {");
    REQUIRE(at != std::string::npos);
    // The JSON inside logfmt's quoted msg: up to the unescaped closing quote.
    std::string json;
    for (size_t i = at + 7; i < out.size() && out[i] != '"'; ++i) {
        if (out[i] == '\\' && i + 1 < out.size()) ++i;
        json += out[i];
    }
    return json;
}

}  // namespace

TEST_CASE("declared config: defaults filled in, durations in ms, sizes in bytes",
          "[config-schema]") {
    Env env;
    auto got = json::parse(create(env, "      path: /tmp/out\n"));
    CHECK(got.get_string("path", "") == "/tmp/out");
    CHECK(got.get_int("timeout", -1) == 30'000);
    CHECK(got.get_int("max_bytes", -1) == 1024 * 1024);
    CHECK(got.find("verbose")->as_bool() == false);
    CHECK(got.get_int("retries", -1) == 3);
    CHECK(got.find("tags") == nullptr);  // no default: absent

    Env env2;
    auto set = json::parse(create(env2,
                                  "      path: /tmp/out\n      timeout: 250ms\n"
                                  "      max_bytes: 64KiB\n      verbose: true\n"
                                  "      tags: [a, b]\n      mapping: {x: [1, 2]}\n"
                                  "      retries: 5\n"));
    CHECK(set.get_int("timeout", -1) == 250);
    CHECK(set.get_int("max_bytes", -1) == 64 * 1024);
    CHECK(set.find("verbose")->as_bool());
    CHECK(set.find("tags")->size() == 2);
    CHECK(json::dump(*set.find("mapping")) == R"({"x":[1,2]})");
    // The defaults of the two duration types, each written as a bare number.
    CHECK(got.get_int("poll_ms", -1) == 250);   // duration_ms "250": 250ms
    CHECK(got.get_int("wait_ms", -1) == 2000);  // duration "2": 2s
    // A bare number is seconds, as in the host's own keys.
    Env env3;
    CHECK(json::parse(create(env3, "      path: p\n      timeout: 15\n")).get_int("timeout", 0) ==
          15'000);
}

TEST_CASE("declared config: in a duration_ms key a bare number is milliseconds",
          "[config-schema]") {
    auto poll = [](const std::string& written) {
        Env env;
        return json::parse(create(env, "      path: p\n      poll_ms: " + written + "\n"))
            .get_int("poll_ms", -1);
    };
    CHECK(poll("1500") == 1500);
    CHECK(poll("\"1500\"") == 1500);  // quoted, the same number
    CHECK(poll("0") == 0);
    // With a unit it reads as any duration.
    CHECK(poll("250ms") == 250);
    CHECK(poll("2s") == 2000);
    CHECK(poll("5m") == 300'000);
    CHECK(poll("1h") == 3'600'000);
    CHECK(poll("1d") == 86'400'000);
    Env e1;
    CHECK_THAT(create(e1, "      path: p\n      poll_ms: -5\n"),
               Catch::Contains("c.yaml:13:7: plugins.conf.config.poll_ms: expected a duration"));
    Env e2;
    CHECK_THAT(create(e2, "      path: p\n      poll_ms: 1.5s\n"),
               Catch::Contains("plugins.conf.config.poll_ms: unknown duration unit '.5s'"));
}

TEST_CASE("declared config: in a duration key a bare number is seconds, even in one named *_ms",
          "[config-schema]") {
    auto wait = [](const std::string& written) {
        Env env;
        return json::parse(create(env, "      path: p\n      wait_ms: " + written + "\n"))
            .get_int("wait_ms", -1);
    };
    CHECK(wait("15") == 15'000);
    CHECK(wait("\"15\"") == 15'000);
    // With a unit it reads the same as in a duration_ms.
    CHECK(wait("250ms") == 250);
    CHECK(wait("2s") == 2000);
    CHECK(wait("5m") == 300'000);
}

TEST_CASE("the declared type, never the key's name, says what a bare duration means",
          "[config-schema]") {
    auto applied = [](const std::vector<ConfigKeySpec>& keys, const std::string& config) {
        PluginConfig pc;
        pc.library = "t.so";
        pc.config_json = config;
        return json::parse(apply_config_schema(keys, pc, "plugins.t.config"));
    };
    // A duration named *_ms: seconds, given or as its default.
    const clayhook_config_key seconds[] = {
        {"x_ms", CLAYHOOK_CONFIG_DURATION, 0, nullptr, ""},
        {"x_ms_default", CLAYHOOK_CONFIG_DURATION, 0, "2", ""},
    };
    const auto s = read_config_keys(seconds, std::size(seconds));
    CHECK(applied(s, R"({"x_ms":15})").get_int("x_ms", -1) == 15'000);
    CHECK(applied(s, R"({"x_ms":"15"})").get_int("x_ms", -1) == 15'000);
    CHECK(applied(s, "{}").get_int("x_ms_default", -1) == 2000);
    CHECK(applied(s, R"({"x_ms":"250ms"})").get_int("x_ms", -1) == 250);
    CHECK(applied(s, R"({"x_ms":"1d"})").get_int("x_ms", -1) == 86'400'000);
    CHECK_THROWS_WITH(applied(s, R"({"x_ms":316224001})"),
                      Catch::Contains("plugins.t.config.x_ms: is longer than ten years"));
    CHECK(config_type_name(s[0]) == "duration");

    // A duration_ms, whatever its name: milliseconds, given or as its default.
    const clayhook_config_key millis[] = {
        {"y_ms", CLAYHOOK_CONFIG_DURATION_MS, 0, nullptr, ""},
        {"y", CLAYHOOK_CONFIG_DURATION_MS, 0, "250", ""},
    };
    const auto m = read_config_keys(millis, std::size(millis));
    CHECK(applied(m, R"({"y_ms":1500})").get_int("y_ms", -1) == 1500);
    CHECK(applied(m, R"({"y_ms":"1500"})").get_int("y_ms", -1) == 1500);
    CHECK(applied(m, "{}").get_int("y", -1) == 250);
    CHECK(applied(m, R"({"y":1500})").get_int("y", -1) == 1500);
    CHECK(applied(m, R"({"y_ms":"2s"})").get_int("y_ms", -1) == 2000);
    CHECK(applied(m, R"({"y":"1m"})").get_int("y", -1) == 60'000);
    // At most ten years, as any duration.
    CHECK(applied(m, R"({"y_ms":316224000000})").get_int("y_ms", -1) == 316'224'000'000);
    CHECK_THROWS_WITH(applied(m, R"({"y_ms":316224000001})"),
                      Catch::Contains("plugins.t.config.y_ms: is longer than ten years"));
    CHECK(config_type_name(m[0]) == "duration (bare number = ms)");
}

TEST_CASE("declared config: mistakes are refused at their line, with a suggestion",
          "[config-schema]") {
    Env e1;
    auto unknown = create(e1, "      path: /tmp/out\n      timeuot: 5s\n");
    CHECK_THAT(unknown, Catch::StartsWith("refused: "));
    CHECK_THAT(unknown, Catch::Contains("c.yaml:13:7: plugins.conf.config.timeuot: unknown key "
                                        "(did you mean 'timeout'?)"));
    Env e2;
    CHECK_THAT(create(e2, "      timeout: 5s\n"),
               Catch::Contains("plugins.conf.config.path: is required (string: where it writes)"));
    Env e3;
    CHECK_THAT(create(e3, "      path: p\n      timeout: soon\n"),
               Catch::Contains("c.yaml:13:7: plugins.conf.config.timeout: expected a duration"));
    Env e4;
    CHECK_THAT(create(e4, "      path: p\n      verbose: yes please\n"),
               Catch::Contains("plugins.conf.config.verbose: expected true or false"));
    Env e5;
    CHECK_THAT(create(e5, "      path: p\n      retries: \"3\"\n"),
               Catch::Contains("plugins.conf.config.retries: expected a whole number, found '3'"));
    Env e6;
    CHECK_THAT(create(e6, "      path: p\n      max_bytes: 3 apples\n"),
               Catch::Contains("max_bytes: unknown size unit"));
    Env e7;
    CHECK_THAT(create(e7, "      path: p\n      tags: [a, 1]\n"),
               Catch::Contains("tags: expected a list of text"));
}

TEST_CASE("declared config: a secret key takes references only, resolved for the plugin",
          "[config-schema][security]") {
    Env e1;
    auto clear = create(e1, "      path: p\n      token: hunter2-in-clear\n");
    CHECK_THAT(clear, Catch::Contains("plugins.conf.config.token: is a secret: write it as "
                                      "${ENV_VAR}, file:PATH or credential:NAME"));
    CHECK(clear.find("hunter2") == std::string::npos);
    // Quoting a reference makes it text, which a secret key refuses too.
    Env e2;
    CHECK_THAT(create(e2, "      path: p\n      token: \"${CLAYHOOK_SCHEMA_TOKEN}\"\n"),
               Catch::Contains("is a secret"));
    ::setenv("CLAYHOOK_SCHEMA_TOKEN", "tok-from-env-0123", 1);
    Env e3;
    auto ok = json::parse(create(e3, "      path: p\n      token: ${CLAYHOOK_SCHEMA_TOKEN}\n"));
    CHECK(ok.get_string("token", "") == "tok-from-env-0123");

    // What check shows never holds a resolved secret: not a secret key, not
    // a plain key written as a reference, not one nested in a mapping.
    Env e4;
    ::setenv("CLAYHOOK_SCHEMA_SECRET", "0123456789abcdef", 1);
    const std::string file =
        e4.dir.write("c.yaml", yaml_with("      path: ${CLAYHOOK_SCHEMA_TOKEN}\n"
                                         "      token: ${CLAYHOOK_SCHEMA_TOKEN}\n"
                                         "      mapping:\n        auth: ${CLAYHOOK_SCHEMA_TOKEN}\n"
                                         "      tags: [a, b]\n      timeout: 2s\n"));
    Config c = load_config(file, LoadOptions{});
    auto lib = PluginLibrary::load("conf", fixture("sdk_config"), e4.dir.path().string());
    auto inst = PluginInstance::create(lib, c.plugins.at(0), e4.log, e4.metrics);
    std::string shown;
    for (const auto& line : inst->info().declared_config)
        shown += line + "\n";
    CHECK(shown.find("tok-from-env") == std::string::npos);
    CHECK_THAT(shown, Catch::Contains("path=(secret)\n"));
    CHECK_THAT(shown, Catch::Contains("token=(secret)\n"));
    CHECK_THAT(shown, Catch::Contains("mapping={...}\n"));
    CHECK_THAT(shown, Catch::Contains("tags=[2 items]\n"));
    CHECK_THAT(shown, Catch::Contains("timeout=2000ms\n"));
    CHECK_THAT(shown, Catch::Contains("max_bytes=1048576 bytes\n"));
    ::unsetenv("CLAYHOOK_SCHEMA_TOKEN");
}

TEST_CASE("declared config: check shows errors with positions for a process-isolated plugin too",
          "[config-schema]") {
    // The worker process applies the declaration where the library is loaded.
    Env env;
    ::setenv("CLAYHOOK_SCHEMA_SECRET", "0123456789abcdef", 1);
    std::string yaml = yaml_with("      path: p\n      timeuot: 5s\n");
    yaml.replace(yaml.find("isolation: in-process"), 21, "isolation: process");
    const std::string file = env.dir.write("c.yaml", yaml);
    Config c = load_config(file, LoadOptions{});
    WorkerSettings ws;
    std::string why;
    ws.executable = find_worker_executable(why);
    REQUIRE(!ws.executable.empty());
    try {
        auto inst = PluginInstance::create_isolated(c.plugins.at(0), ws, env.log, env.metrics);
        FAIL("created");
    } catch (const PluginError& e) {
        CHECK_THAT(e.what(), Catch::Contains("c.yaml:13:7: plugins.conf.config.timeuot: unknown "
                                             "key (did you mean 'timeout'?)"));
    }
}

TEST_CASE("a declaration is checked when the library loads", "[config-schema]") {
    clayhook_config_key dup[] = {{"a", CLAYHOOK_CONFIG_STRING, 0, nullptr, ""},
                                 {"a", CLAYHOOK_CONFIG_STRING, 0, nullptr, ""}};
    CHECK_THROWS_WITH(read_config_keys(dup, 2), Catch::Contains("declared twice"));
    clayhook_config_key bad_default[] = {{"t", CLAYHOOK_CONFIG_DURATION, 0, "soon", ""}};
    CHECK_THROWS_WITH(read_config_keys(bad_default, 1), Catch::Contains("its default expected"));
    clayhook_config_key req_default[] = {
        {"t", CLAYHOOK_CONFIG_STRING, CLAYHOOK_CONFIG_REQUIRED, "x", ""}};
    CHECK_THROWS_WITH(read_config_keys(req_default, 1), Catch::Contains("has no default"));
    clayhook_config_key bad_type[] = {{"t", 42, 0, nullptr, ""}};
    CHECK_THROWS_WITH(read_config_keys(bad_type, 1), Catch::Contains("unknown type 42"));
    clayhook_config_key bad_name[] = {{"Bad Name", CLAYHOOK_CONFIG_STRING, 0, nullptr, ""}};
    CHECK_THROWS_WITH(read_config_keys(bad_name, 1), Catch::Contains("not of [a-z0-9_.-]+"));
    clayhook_config_key secret_int[] = {
        {"n", CLAYHOOK_CONFIG_INTEGER, CLAYHOOK_CONFIG_SECRET, nullptr, ""}};
    CHECK_THROWS_WITH(read_config_keys(secret_int, 1), Catch::Contains("a secret is a string"));

    auto md = config_table_markdown(read_config_keys(
        std::initializer_list<clayhook_config_key>{
            {"path", CLAYHOOK_CONFIG_STRING, CLAYHOOK_CONFIG_REQUIRED, nullptr, "a | b"},
            {"t", CLAYHOOK_CONFIG_DURATION, 0, "30s", "wait"},
            {"p_ms", CLAYHOOK_CONFIG_DURATION_MS, 0, "250", "poll"}}
            .begin(),
        3));
    CHECK(md ==
          "| Key | Type | Default | Meaning |\n|---|---|---|---|\n"
          "| `path` | string | required | a \\| b |\n| `t` | duration | `30s` | wait |\n"
          "| `p_ms` | duration (bare number = ms) | `250` | poll |\n");
}

TEST_CASE("a declared type the host does not know is refused at load, naming the key and the type",
          "[config-schema]") {
    // 7 (duration_ms) is the last type this host knows; 8 is not one yet.
    const clayhook_config_key known[] = {{"poll_ms", CLAYHOOK_CONFIG_DURATION_MS, 0, "250", ""}};
    CHECK(read_config_keys(known, 1).size() == 1);
    const clayhook_config_key next[] = {{"poll_ms", CLAYHOOK_CONFIG_DURATION_MS, 0, nullptr, ""},
                                        {"later", 8, 0, nullptr, ""}};
    CHECK_THROWS_WITH(
        read_config_keys(next, 2),
        Catch::Contains("config key 'later' has an unknown type 8") && Catch::Contains("0 to 7"));
}

TEST_CASE("a plugin binary built for ABI 1.0 still loads and runs", "[config-schema][abi]") {
    Env env;
    auto lib = PluginLibrary::load("old", fixture("abi_1_0"), env.dir.path().string());
    CHECK(lib->abi().str() == "1.0");
    CHECK(lib->config_keys().empty());
    PluginConfig pc;
    pc.name = "old";
    pc.config_json = R"({"anything":"goes"})";  // undeclared: handed over as it is
    auto inst = PluginInstance::create(lib, pc, env.log, env.metrics);
    EventView e;
    e.body = "{}";
    std::vector<EventView> one{e};
    auto out = inst->handle_batch(one);
    REQUIRE(out.size() == 1);
    CHECK(out[0].status == CLAYHOOK_DONE);
}

TEST_CASE(
    "handle_batch without handle: one event is a batch of one, and an unfilled result "
    "is a retry",
    "[config-schema][sdk]") {
    Env env;
    for (const char* which : {"sdk_batch_only", "batch_unset_c"}) {
        INFO(which);
        auto lib = PluginLibrary::load("b", fixture(which), env.dir.path().string());
        CHECK(lib->descriptor().max_batch_size > 0);
        PluginConfig pc;
        pc.name = "b";
        auto inst = PluginInstance::create(lib, pc, env.log, env.metrics);
        std::vector<std::string> bodies = {"{}", R"({"answer":"skip"})", "{}",
                                           R"({"answer":"skip"})", "{}"};
        std::vector<EventView> events;
        for (const auto& b : bodies) {
            EventView e;
            e.body = b;
            events.push_back(e);
        }
        auto out = inst->handle_batch(events);
        REQUIRE(out.size() == 5);
        for (size_t i = 0; i < out.size(); ++i) {
            INFO("item " << i);
            if (i % 2 == 0) {
                CHECK(out[i].status == CLAYHOOK_DONE);
            } else {
                CHECK(out[i].status == CLAYHOOK_RETRY);
                CHECK_THAT(out[i].reason, Catch::Contains("no result") || Catch::Contains("unset"));
            }
        }
        // One event alone goes through the batch path too.
        std::vector<EventView> single{events[1]};
        auto one = inst->handle_batch(single);
        REQUIRE(one.size() == 1);
        CHECK(one[0].status ==
              (std::string(which) == "batch_unset_c" ? CLAYHOOK_DONE : CLAYHOOK_RETRY));
    }
}

// plugins/common/units.hpp: the plugins' durations and sizes, in the host's
// own syntax (checked here against the host's config loader itself), plus
// the integer milliseconds the plugins' *_ms keys took before.
#include "units.hpp"

#include "config/ConfigError.h"
#include "config/ConfigLoader.h"
#include "support/TempDir.h"
#include "support/TestPaths.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

namespace units = clayhook_plugins::units;
namespace json = clayhook::json;
using std::chrono::milliseconds;
using Problem = units::Problem;

TEST_CASE("units: durations in the host's syntax", "[units]") {
    auto ms = [](const char* s) { return units::parse_duration(s).value; };
    CHECK(ms("250ms") == milliseconds(250));
    CHECK(ms("30s") == milliseconds(30'000));
    CHECK(ms("5m") == milliseconds(300'000));
    CHECK(ms("1h") == milliseconds(3'600'000));
    CHECK(ms("1d") == milliseconds(86'400'000));
    CHECK(ms("30") == milliseconds(30'000));  // a bare number is seconds, as in clayhook.yaml
    CHECK(ms("0") == milliseconds(0));
    CHECK(ms("007s") == milliseconds(7'000));
    CHECK(ms("3660d") == units::kMaxDuration);  // ten years of 366 days: the most

    struct Bad {
        const char* text;
        Problem problem;
        const char* message;
    };
    for (const Bad& b : {
             Bad{"", Problem::malformed, "expected a duration like 250ms, 30s, 5m, 2h or 7d"},
             Bad{"-1s", Problem::malformed, "found '-1s'"},
             Bad{" 5s", Problem::malformed, "found ' 5s'"},
             Bad{"ms", Problem::malformed, "found 'ms'"},
             Bad{"1234567890123ms", Problem::malformed, "expected a duration"},
             Bad{"1.5h", Problem::unknown_unit, "unknown duration unit '.5h' (ms, s, m, h, d)"},
             Bad{"2w", Problem::unknown_unit, "unknown duration unit 'w'"},
             Bad{"5 s", Problem::unknown_unit, "unknown duration unit ' s'"},
             Bad{"30S", Problem::unknown_unit, "unknown duration unit 'S'"},
             Bad{"3661d", Problem::too_large, "is longer than ten years"},
         }) {
        INFO(b.text);
        auto p = units::parse_duration(b.text);
        CHECK_FALSE(p);
        CHECK(p.problem == b.problem);
        CHECK_THAT(p.message, Catch::Contains(b.message));
    }
    CHECK(units::parse_duration("2w").unit == "w");
}

TEST_CASE("units: sizes in the host's syntax, all 1024-based", "[units]") {
    auto bytes = [](const char* s) { return units::parse_size(s).value; };
    CHECK(bytes("65536") == 65536u);
    CHECK(bytes("2B") == 2u);
    CHECK(bytes("64KiB") == 64u * 1024);
    CHECK(bytes("64KB") == 64u * 1024);
    CHECK(bytes("1MiB") == 1024u * 1024);
    CHECK(bytes("10MB") == 10u * 1024 * 1024);
    CHECK(bytes("1GiB") == 1024ULL * 1024 * 1024);
    CHECK(bytes("1024GiB") == 1ULL << 40);

    CHECK(units::parse_size("1KiB", 1024).value == 1024u);
    auto over = units::parse_size("2KiB", 1024);
    CHECK(over.problem == Problem::too_large);
    CHECK(over.message == "must be at most 1024 bytes");
    // Fifteen digits of GiB cannot overflow: refused against the maximum.
    CHECK(units::parse_size("999999999999999GiB").problem == Problem::too_large);

    auto tib = units::parse_size("1TiB");
    CHECK(tib.problem == Problem::unknown_unit);
    CHECK(tib.unit == "TiB");
    CHECK(tib.message == "unknown size unit 'TiB' (B, KB/KiB, MB/MiB, GB/GiB; all 1024-based)");
    CHECK(units::parse_size("64 MiB").unit == " MiB");
    CHECK(units::parse_size("1kb").problem == Problem::unknown_unit);
    for (const char* bad : {"", "-5", "MiB", "1234567890123456"}) {
        INFO(bad);
        auto p = units::parse_size(bad);
        CHECK(p.problem == Problem::malformed);
        CHECK_THAT(p.message, Catch::StartsWith("expected a size like 65536, 100KB or 1MiB"));
    }
}

TEST_CASE("units: the same answers as the host's config loader", "[units]") {
    // Each text as dispatch.call_timeout and as a source's max_body_bytes
    // (at most 64 MiB) in a real clayhook.yaml.
    ::setenv("CLAYHOOK_UNITS_TEST_SECRET", "0123456789abcdef", 1);
    auto load = [](const std::string& duration, const std::string& size) {
        clayhook::test::TempDir dir;
        auto file = dir.write("c.yaml", R"(version: 1
admin: {enabled: false}
dispatch: {call_timeout: ')" + duration + R"('}
sources:
  - name: clay
    path: /webhooks/clay
    max_body_bytes: ')" + size + R"('
    verify:
      scheme: hmac-sha256
      secrets: ["${CLAYHOOK_UNITS_TEST_SECRET}"]
)");
        clayhook::LoadOptions o;
        o.bundled_plugin_dirs = {clayhook::test::kBundledPluginDir};
        return clayhook::load_config(file, o);
    };
    for (const char* d : {"250ms", "30s", "5m", "1h", "1d", "45", "3660d", "3661d", "1.5h", "2w",
                          "-1s", "5 s", "1234567890123ms"}) {
        INFO(d);
        auto mine = units::parse_duration(d);
        try {
            auto c = load(d, "1MiB");
            REQUIRE(mine);
            CHECK(c.dispatch.call_timeout == *mine.value);
        } catch (const clayhook::ConfigError& e) {
            CHECK_FALSE(mine);
            CHECK_THAT(std::string(e.what()), Catch::Contains(mine.message));
        }
    }
    const uint64_t max = 64ULL << 20;
    for (const char* s : {"65536", "100KB", "64KiB", "1MiB", "64MiB", "65MiB", "1TiB", "10XB",
                          "64 MiB", "-1", "1GB"}) {
        INFO(s);
        auto mine = units::parse_size(s, max);
        try {
            auto c = load("30s", s);
            REQUIRE(mine);
            CHECK(c.sources[0].max_body_bytes == *mine.value);
        } catch (const clayhook::ConfigError& e) {
            CHECK_FALSE(mine);
            CHECK_THAT(std::string(e.what()), Catch::Contains(mine.message));
        }
    }
    ::unsetenv("CLAYHOOK_UNITS_TEST_SECRET");
}

TEST_CASE("units: a plugin's duration key takes the host's syntax or integer milliseconds",
          "[units]") {
    const milliseconds lo{1}, hi{600'000};
    auto read = [&](const char* config_json) {
        return units::duration_ms_setting(json::parse(config_json), "timeout_ms",
                                          milliseconds(30'000), lo, hi);
    };
    CHECK(read("{}") == milliseconds(30'000));
    CHECK(read(R"({"timeout_ms":5000})") == milliseconds(5000));  // the old form: ms
    CHECK(read(R"({"timeout_ms":"5s"})") == milliseconds(5000));
    CHECK(read(R"({"timeout_ms":"250ms"})") == milliseconds(250));
    CHECK(read(R"({"timeout_ms":"10m"})") == milliseconds(600'000));
    CHECK(read(R"({"timeout_ms":"2"})") == milliseconds(2000));  // a bare string is seconds
    CHECK(read(R"({"timeout_ms":1e3})") == milliseconds(1000));  // an integral number

    auto refused = [&](const char* config_json) -> std::string {
        try {
            read(config_json);
        } catch (const std::runtime_error& e) {
            return e.what();
        }
        return "";
    };
    CHECK(refused(R"({"timeout_ms":0})") ==
          "config: 'timeout_ms' must be from 1ms to 10m (an integer is milliseconds), found 0");
    CHECK(refused(R"({"timeout_ms":"11m"})") ==
          "config: 'timeout_ms' must be from 1ms to 10m, found '11m'");
    CHECK(refused(R"({"timeout_ms":"2w"})") ==
          "config: 'timeout_ms' unknown duration unit 'w' (ms, s, m, h, d)");
    CHECK_THAT(refused(R"({"timeout_ms":1.5})"),
               Catch::StartsWith("config: 'timeout_ms' must be a duration like"));
    CHECK_THAT(refused(R"({"timeout_ms":true})"), Catch::Contains("found true"));
    CHECK_THAT(refused(R"({"timeout_ms":-5})"), Catch::Contains("found -5"));

    CHECK(units::format_duration(milliseconds(600'000)) == "10m");
    CHECK(units::format_duration(milliseconds(1500)) == "1500ms");
    CHECK(units::format_duration(milliseconds(86'400'000)) == "1d");
    CHECK(units::format_duration(milliseconds(0)) == "0ms");
}

#include "config/ConfigError.h"
#include "config/ConfigLoader.h"
#include "config/SecretResolver.h"
#include "support/TempDir.h"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstdlib>

using namespace clayhook;
using clayhook::test::TempDir;

TEST_CASE("${VAR} reads the environment", "[secrets]") {
    ::setenv("CLAYHOOK_T_ENV", "value-from-env", 1);
    SecretResolver r("/");
    auto s = r.resolve("${CLAYHOOK_T_ENV}", {});
    CHECK(s.resolved);
    CHECK(s.value == "value-from-env");
    CHECK(s.origin == "env CLAYHOOK_T_ENV");
    ::unsetenv("CLAYHOOK_T_ENV");
    auto unset = r.resolve("${CLAYHOOK_T_ENV}", {});
    CHECK_FALSE(unset.resolved);
    CHECK(unset.value.empty());
    CHECK_THAT(unset.error, Catch::Contains("CLAYHOOK_T_ENV is not set"));
}

TEST_CASE("file: reads a file relative to the base folder, one newline dropped", "[secrets]") {
    TempDir dir;
    dir.write("secrets/clay", "file-secret-value\n");
    SecretResolver r(dir.path().string());
    auto s = r.resolve("file:secrets/clay", {});
    CHECK(s.resolved);
    CHECK(s.value == "file-secret-value");
    CHECK(s.origin == "file " + dir.file("secrets/clay"));
    CHECK(r.warnings().empty());  // written 0600
}

TEST_CASE("an unreadable, empty or group-readable secret file is reported", "[secrets]") {
    TempDir dir;
    SecretResolver r(dir.path().string());
    auto missing = r.resolve("file:nope", {});
    CHECK_FALSE(missing.resolved);
    CHECK_THAT(missing.error, Catch::Contains("cannot read"));
    dir.write("empty", "\n");
    CHECK_THAT(r.resolve("file:empty", {}).error, Catch::Contains("is empty"));
    auto open = dir.write("open", "shared-secret");
    ::chmod(open.c_str(), 0644);
    CHECK(r.resolve("file:open", {}).resolved);
    REQUIRE(r.warnings().size() == 1);
    CHECK_THAT(r.warnings()[0], Catch::Contains("mode 0644"));
}

TEST_CASE("${VAR:-file:PATH} falls back when the variable is unset", "[secrets]") {
    TempDir dir;
    dir.write("fallback", "from-file");
    SecretResolver r(dir.path().string());
    ::unsetenv("CLAYHOOK_T_FB");
    auto s = r.resolve("${CLAYHOOK_T_FB:-file:fallback}", {});
    CHECK(s.resolved);
    CHECK(s.value == "from-file");
    ::setenv("CLAYHOOK_T_FB", "from-env", 1);
    CHECK(r.resolve("${CLAYHOOK_T_FB:-file:fallback}", {}).value == "from-env");
    ::unsetenv("CLAYHOOK_T_FB");
    auto both = r.resolve("${CLAYHOOK_T_FB:-file:absent}", {});
    CHECK_FALSE(both.resolved);
    CHECK_THAT(both.error, Catch::Contains("CLAYHOOK_T_FB is not set, and cannot read"));
}

TEST_CASE("malformed references are syntax errors", "[secrets]") {
    SecretResolver r("/");
    CHECK_THAT(r.resolve("${1BAD}", {}).error, Catch::StartsWith("syntax:"));
    CHECK_THAT(r.resolve("${A:-plain}", {}).error, Catch::StartsWith("syntax:"));
    CHECK_THAT(r.resolve("file:", {}).error, Catch::StartsWith("syntax:"));
    CHECK_THAT(r.resolve("in-clear", {}).error, Catch::StartsWith("syntax:"));
}

TEST_CASE("unresolved secrets are reported by the loader and refused by serve",
          "[secrets][config]") {
    TempDir dir;
    ::unsetenv("CLAYHOOK_T_MISSING");
    auto file = dir.write("c.yaml", R"(admin: {enabled: false}
sources:
  - name: a
    path: /a
    verify: {scheme: token, secrets: ["${CLAYHOOK_T_MISSING}"]}
)");
    LoadOptions o;
    auto c = load_config(file, o);
    REQUIRE(c.sources[0].verify.secrets.size() == 1);
    CHECK_FALSE(c.sources[0].verify.secrets[0].resolved);
    try {
        require_secrets(c);
        FAIL("accepted an unresolved secret");
    } catch (const ConfigError& e) {
        CHECK(e.position().line == 5);
        CHECK_THAT(std::string(e.what()), Catch::Contains("CLAYHOOK_T_MISSING is not set"));
    }
}

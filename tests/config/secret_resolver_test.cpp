#include "config/ConfigError.h"
#include "config/ConfigLoader.h"
#include "config/SecretResolver.h"
#include "support/TempDir.h"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

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

TEST_CASE("a secret file is capped at 64 KiB, counted before the newline is dropped", "[secrets]") {
    TempDir dir;
    SecretResolver r(dir.path().string());
    dir.write("max", std::string(64 * 1024 - 1, 'k') + "\n");
    auto max = r.resolve("file:max", {});
    CHECK(max.resolved);
    CHECK(max.value == std::string(64 * 1024 - 1, 'k'));
    dir.write("over", std::string(64 * 1024, 'k') + "\n");
    auto over = r.resolve("file:over", {});
    CHECK_FALSE(over.resolved);
    CHECK(over.value.empty());
    CHECK(over.error == "not resolved: " + dir.file("over") + " is larger than 64 KiB");
    CHECK(over.error.find("kkkk") == std::string::npos);
}

// Only cap + 1 bytes are ever read: a sparse file of 64 GiB (more than the
// machine's memory) is refused at once instead of being read whole.
TEST_CASE("a huge secret file is refused without reading it whole", "[secrets]") {
    TempDir dir;
    auto path = dir.write("huge", "s3cr3t-prefix");
    REQUIRE(::truncate(path.c_str(), 64LL << 30) == 0);
    SecretResolver r(dir.path().string());
    auto start = std::chrono::steady_clock::now();
    auto s = r.resolve("file:huge", {});
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
    CHECK_FALSE(s.resolved);
    CHECK(s.value.empty());
    CHECK_THAT(s.error, Catch::EndsWith(" is larger than 64 KiB"));
    CHECK(s.error.find("s3cr3t") == std::string::npos);
}

TEST_CASE("file:/dev/zero is refused at once, not read forever", "[secrets]") {
    SecretResolver r("/");
    auto start = std::chrono::steady_clock::now();
    auto s = r.resolve("file:/dev/zero", {});
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
    CHECK_FALSE(s.resolved);
    CHECK(s.value.empty());
    CHECK(s.error == "not resolved: /dev/zero is not a regular file (a character device)");
}

// A FIFO without a writer blocks a plain open() forever. If the resolver ever
// blocks on it again, a watchdog writes into the FIFO after a few seconds (and
// keeps doing so until the test is over), so that the test fails instead of
// hanging.
TEST_CASE("a FIFO as a secret file is refused without blocking", "[secrets]") {
    TempDir dir;
    auto fifo = dir.file("fifo");
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    std::atomic<bool> done{false};
    std::thread watchdog([&] {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (!done) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            if (std::chrono::steady_clock::now() < deadline) continue;
            // Succeeds only while a reader has the FIFO open, i.e. is stuck on it.
            int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
            if (fd >= 0) {
                (void)!::write(fd, "unblocked-by-watchdog", 21);
                ::close(fd);
            }
        }
    });
    struct Join {
        std::atomic<bool>& done;
        std::thread& t;
        ~Join() {
            done = true;
            t.join();
        }
    } join{done, watchdog};
    SecretResolver r(dir.path().string());
    auto start = std::chrono::steady_clock::now();
    auto s = r.resolve("file:fifo", {});
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
    CHECK_FALSE(s.resolved);
    CHECK(s.value.empty());
    CHECK(s.error == "not resolved: " + fifo + " is not a regular file (a FIFO)");
    // Through a fallback and a symlink alike.
    REQUIRE(::symlink(fifo.c_str(), dir.file("link").c_str()) == 0);
    ::unsetenv("CLAYHOOK_T_FIFO");
    auto via = r.resolve("${CLAYHOOK_T_FIFO:-file:link}", {});
    CHECK_FALSE(via.resolved);
    CHECK_THAT(via.error, Catch::EndsWith(dir.file("link") + " is not a regular file (a FIFO)"));
    // A folder is not a secret file either.
    ::mkdir(dir.file("folder").c_str(), 0700);
    CHECK(r.resolve("file:folder", {}).error ==
          "not resolved: " + dir.file("folder") + " is not a regular file (a folder)");
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

TEST_CASE("credential:NAME reads systemd's credential, else the file beside the config",
          "[secrets]") {
    TempDir dir;
    dir.write("creds/clay-secret", "from-systemd\n");
    dir.write("etc/clay-secret", "from-etc\n");
    SecretResolver r(dir.file("cwd"), dir.file("etc"));
    ::setenv("CREDENTIALS_DIRECTORY", dir.file("creds").c_str(), 1);
    auto s = r.resolve("credential:clay-secret", {});
    CHECK(s.resolved);
    CHECK(s.value == "from-systemd");
    CHECK(s.origin == "systemd credential clay-secret, file " + dir.file("creds/clay-secret"));
    auto missing = r.resolve("credential:absent", {});
    CHECK_FALSE(missing.resolved);
    CHECK_THAT(missing.error, Catch::Contains("cannot read " + dir.file("creds/absent")));
    // In an operator's shell (no CREDENTIALS_DIRECTORY): the config's folder.
    ::unsetenv("CREDENTIALS_DIRECTORY");
    auto shell = r.resolve("credential:clay-secret", {});
    CHECK(shell.value == "from-etc");
    CHECK_THAT(shell.origin, Catch::Contains(dir.file("etc/clay-secret")));
    // Also as the fallback of ${VAR:-...}.
    ::unsetenv("CLAYHOOK_T_CRED");
    CHECK(r.resolve("${CLAYHOOK_T_CRED:-credential:clay-secret}", {}).value == "from-etc");
    // Without a fallback folder it says why.
    SecretResolver bare(dir.file("cwd"));
    CHECK_THAT(bare.resolve("credential:clay-secret", {}).error,
               Catch::Contains("CREDENTIALS_DIRECTORY is not set"));
    // One file name only: no way out of the credentials folder.
    for (const char* bad : {"credential:", "credential:../etc/clay-secret", "credential:a/b",
                            "credential:..", "credential:."})
        CHECK_THAT(r.resolve(bad, {}).error, Catch::StartsWith("syntax:"));
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

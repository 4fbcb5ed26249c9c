// The store as an operator loses it: the SQLite file deleted (rm -r var/) or
// replaced under a running host. The host stops acknowledging (503 with
// Retry-After, /readyz not ready) instead of writing into a file no one will
// read, and says why; a file moved back is in place again.
#include "clay/ClayApi.h"
#include "support/HostProcess.h"
#include "support/SignedPost.h"
#include "support/Wait.h"

#include <catch2/catch.hpp>

#include <filesystem>

using namespace clayhook;
using namespace clayhook::test;
using namespace std::chrono_literals;

namespace {

const char* kSecret = "lost-store-secret";

struct Host : HostProcess {
    std::string db = dir.file("var/clayhook.db");
    Host() {
        options.env["LOST_SECRET"] = kSecret;
        write_config(R"(admin: {enabled: false}
listener: {address: 127.0.0.1, port: 0}
store: {path: )" + db +
                     R"(}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["${LOST_SECRET}"]}
)");
    }
    SignedReply post(const std::string& row) const {
        return signed_post(port(), kSecret,
                           R"({"event":"enrichment.completed","row_id":")" + row +
                               R"(","timestamp":"2026-11-26T12:00:42.042Z"})");
    }
    int readyz() const { return http_exchange("GET", url("/readyz"), {}, "", 10s).status; }
};

}  // namespace

TEST_CASE("lost store: a database file moved away stops the acknowledgements until it is back",
          "[store][lost]") {
    Host h;
    h.start();
    REQUIRE(h.post("before").status == 200);
    std::filesystem::rename(h.db, h.db + ".moved");
    auto r = h.post("while-away");
    CHECK(r.status == 503);
    CHECK(h.readyz() == 503);
    // Logged with the rejection (its line may reach us a moment after the
    // answer).
    CHECK(h.wait_for_output("was deleted or replaced while the host had it open", 10s));
    // Moved back: the same file, in place again.
    std::filesystem::rename(h.db + ".moved", h.db);
    REQUIRE(wait_until([&] { return h.post("after").status == 200; }, 10s));
    CHECK(h.readyz() == 200);
    // Its size and the room left, on /metrics.
    const std::string metrics = http_exchange("GET", h.url("/metrics"), {}, "", 10s).body;
    CHECK(metrics.find("\nclayhook_store_bytes ") != std::string::npos);
    CHECK(metrics.find("\nclayhook_store_free_bytes ") != std::string::npos);
    // The WAL checkpoints (none yet: a handful of deliveries).
    CHECK(metrics.find("\nclayhook_store_checkpoints 0\n") != std::string::npos);
    CHECK(metrics.find("\nclayhook_store_checkpoint_restarts 0\n") != std::string::npos);
    CHECK(metrics.find("\nclayhook_store_checkpoint_failures 0\n") != std::string::npos);
    CHECK(h.stop() == 0);
}

TEST_CASE("lost store: var/ deleted under a running host, nothing more is acknowledged",
          "[store][lost]") {
    Host h;
    h.start();
    REQUIRE(h.post("before").status == 200);
    std::filesystem::remove_all(h.dir.file("var"));
    for (int i = 0; i < 3; ++i)
        CHECK(h.post("gone-" + std::to_string(i)).status == 503);
    CHECK(h.readyz() == 503);
    // A new, empty file at the path is not the store the host has open.
    std::filesystem::create_directories(h.dir.file("var"));
    h.dir.write("var/clayhook.db", "");
    CHECK(h.post("replaced").status == 503);
    CHECK(h.readyz() == 503);
    CHECK(h.stop() == 0);
}

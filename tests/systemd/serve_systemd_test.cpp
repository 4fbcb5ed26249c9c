// `clayhook serve` under a service manager, played by the test: the
// notifications a Type=notify unit needs, a watchdog fed only while the
// intake answers, and a listening socket passed as systemd's socket
// activation passes it (LISTEN_FDS, fd 3).
#include "systemd/NotifySocket.h"

#include "support/HostProcess.h"
#include "support/RawHttp.h"
#include "support/SignedPost.h"
#include "support/TestPaths.h"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>

#include <future>

using namespace clayhook::test;
using namespace std::chrono_literals;

namespace {

const std::string kSecret = "systemd-test-secret-0123";

std::string config(const TempDir& dir, const std::string& listener_extra = "") {
    return "admin: {enabled: false}\n"
           "listener: {address: 127.0.0.1, port: 0" +
           listener_extra + "}\nstore: {path: " + dir.file("var/clayhook.db") +
           "}\n"
           "sources:\n"
           "  - name: clay\n"
           "    path: /webhooks/clay\n"
           "    verify: {scheme: hmac-sha256, secrets: [\"${CLAYHOOK_SD_SECRET}\"]}\n"
           "plugins:\n"
           "  - name: sink\n"
           "    library: bundled:jsonl-sink\n"
           "    config: {path: " +
           dir.file("events.jsonl") + "}\n";
}

void prepare(HostProcess& host, const std::string& listener_extra = "") {
    host.options.env["CLAYHOOK_PLUGIN_DIR"] = kBundledPluginDir;
    host.options.env["CLAYHOOK_SD_SECRET"] = kSecret;
    host.write_config(config(host.dir, listener_extra));
}

}  // namespace

TEST_CASE(
    "serve notifies systemd: ready, reloading and ready again, stopping, and feeds the watchdog",
    "[systemd][serve]") {
    HostProcess host;
    NotifySocket sd(host.dir.file("notify"));
    prepare(host);
    host.options.env["NOTIFY_SOCKET"] = sd.path();
    host.options.env["WATCHDOG_USEC"] = "400000";  // probes every 100 ms
    host.start();

    const std::string ready = sd.until("READY=1", 10s);
    CHECK_THAT(ready,
               Catch::Contains("STATUS=serving on 127.0.0.1:" + std::to_string(host.port())));
    CHECK_FALSE(sd.until("WATCHDOG=1", 10s).empty());
    CHECK_FALSE(sd.until("WATCHDOG=1", 10s).empty());
    CHECK_THAT(host.err(), Catch::Contains("msg=\"systemd watchdog on\" interval_ms=400"));

    host.signal(SIGHUP);
    const std::string reloading = sd.until("RELOADING=1", 10s);
    CHECK_THAT(reloading, Catch::Contains("MONOTONIC_USEC="));
    CHECK_THAT(sd.until("READY=1", 10s), Catch::Contains("STATUS=serving (reloaded)"));

    // Still serving between notifications.
    CHECK(signed_post(host.port(), kSecret, R"({"event":"x","row_id":"r1","timestamp":"1"})")
              .status == 200);

    host.signal(SIGTERM);
    CHECK_FALSE(sd.until("STOPPING=1", 10s).empty());
    CHECK(host.wait() == 0);
}

TEST_CASE("serve's watchdog goes unfed while the intake cannot answer, and resumes after",
          "[systemd][serve]") {
    HostProcess host;
    NotifySocket sd(host.dir.file("notify"));
    // The thread server with one request thread: a client that sends half a
    // request head holds it, and the intake cannot answer anyone else. (The
    // event-loop server, the default, has no such thread to hold.)
    prepare(host, ", server: threads, threads: 1, header_timeout: 60s, read_timeout: 60s");
    host.options.env["NOTIFY_SOCKET"] = sd.path();
    host.options.env["WATCHDOG_USEC"] = "2000000";  // probe every 500 ms, timeout 500 ms
    host.start();
    REQUIRE_FALSE(sd.until("WATCHDOG=1", 10s).empty());

    {
        RawConnection slow(host.port());
        REQUIRE(slow.send("POST /webhooks/clay HTTP/1.1\r\nHost: x\r\n"));
        REQUIRE(host.wait_for_output("probe=intake", 20s));
        CHECK_THAT(host.err(), Catch::Contains("no progress: the systemd watchdog is not fed"));
        // Unfed from here: what arrives now was sent before the failure.
        while (!sd.next(50ms).empty()) {
        }
        CHECK(sd.until("WATCHDOG=1", 1500ms).empty());
    }  // the slow client goes: the thread is free again
    REQUIRE(host.wait_for_output("making progress again", 20s));
    CHECK_FALSE(sd.until("WATCHDOG=1", 10s).empty());
    CHECK(host.stop() == 0);
}

TEST_CASE(
    "serve takes the listening socket systemd passes, and connections made before it started "
    "are answered",
    "[systemd][serve]") {
    // The socket a .socket unit would hold: bound and listening before the
    // host exists, so a client's connection waits in its backlog.
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 64) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    const uint16_t port = ntohs(addr.sin_port);

    auto early = std::async(std::launch::async, [port] {
        return signed_post(port, kSecret, R"({"event":"x","row_id":"early","timestamp":"1"})");
    });
    // The early client is connected (in the backlog) before the host starts.
    REQUIRE(early.wait_for(200ms) == std::future_status::timeout);

    HostProcess host;
    prepare(host);
    host.options.listen_fd = fd;
    host.start();
    ::close(fd);  // the host has its own copy now
    CHECK(host.port() == port);
    CHECK_THAT(host.err(), Catch::Contains("socket activation"));

    REQUIRE(early.wait_for(30s) == std::future_status::ready);
    CHECK(early.get().status == 200);
    CHECK(signed_post(port, kSecret, R"({"event":"x","row_id":"late","timestamp":"1"})").status ==
          200);
    CHECK(host.stop() == 0);
}

TEST_CASE("serve refuses a passed descriptor that is not a listening TCP socket",
          "[systemd][serve]") {
    HostProcess host;
    prepare(host);
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    host.options.listen_fd = fds[0];
    CHECK_FALSE(host.try_start(20s));
    ::close(fds[0]);
    ::close(fds[1]);
    CHECK(host.wait() == 1);
    CHECK_THAT(host.err(), Catch::Contains("is not a listening TCP socket"));
}

// systemd's protocols without systemd: the environment serve reads, the
// notification datagrams, and the watchdog that feeds only on progress.
#include "systemd/NotifySocket.h"

#include "log/Logger.h"
#include "support/TempDir.h"
#include "support/Wait.h"
#include "systemd/Systemd.h"
#include "systemd/Watchdog.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <sstream>

using namespace clayhook;
using namespace clayhook::test;
using namespace std::chrono_literals;

TEST_CASE("systemd environment: notify socket, watchdog and passed sockets", "[systemd]") {
    SECTION("nothing set: everything off") {
        auto e =
            systemd::parse_environment(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 42);
        CHECK(e.notify_socket.empty());
        CHECK(e.watchdog_usec.count() == 0);
        CHECK(e.listen_fd == -1);
        CHECK(e.error.empty());
    }
    SECTION("a path and an abstract socket are taken; anything else is an error") {
        CHECK(systemd::parse_environment("/run/systemd/notify", nullptr, nullptr, nullptr, nullptr,
                                         nullptr, 42)
                  .notify_socket == "/run/systemd/notify");
        CHECK(
            systemd::parse_environment("@abstract", nullptr, nullptr, nullptr, nullptr, nullptr, 42)
                .notify_socket == "@abstract");
        auto e =
            systemd::parse_environment("relative", nullptr, nullptr, nullptr, nullptr, nullptr, 42);
        CHECK(e.notify_socket.empty());
        CHECK_THAT(e.error, Catch::Contains("NOTIFY_SOCKET"));
        auto long_path = "/" + std::string(200, 'x');
        CHECK_THAT(systemd::parse_environment(long_path.c_str(), nullptr, nullptr, nullptr, nullptr,
                                              nullptr, 42)
                       .error,
                   Catch::Contains("longer"));
    }
    SECTION("the watchdog counts for this pid only, and must be a positive number") {
        CHECK(systemd::parse_environment(nullptr, "30000000", "42", nullptr, nullptr, nullptr, 42)
                  .watchdog_usec == 30s);
        CHECK(
            systemd::parse_environment(nullptr, "30000000", nullptr, nullptr, nullptr, nullptr, 42)
                .watchdog_usec == 30s);
        CHECK(systemd::parse_environment(nullptr, "30000000", "43", nullptr, nullptr, nullptr, 42)
                  .watchdog_usec.count() == 0);
        for (const char* bad : {"0", "-5", "30s", "12x"})
            CHECK_THAT(
                systemd::parse_environment(nullptr, bad, "42", nullptr, nullptr, nullptr, 42).error,
                Catch::Contains("WATCHDOG_USEC"));
    }
    SECTION("passed sockets: for this pid only; the one named intake, else the first") {
        CHECK(systemd::parse_environment(nullptr, nullptr, nullptr, "42", "1", nullptr, 42)
                  .listen_fd == 3);
        CHECK(systemd::parse_environment(nullptr, nullptr, nullptr, "42", "3", "admin:x:intake", 42)
                  .listen_fd == 5);
        CHECK(
            systemd::parse_environment(nullptr, nullptr, nullptr, "42", "2", "a:b", 42).listen_fd ==
            3);
        CHECK(systemd::parse_environment(nullptr, nullptr, nullptr, "43", "1", nullptr, 42)
                  .listen_fd == -1);
        CHECK_THAT(
            systemd::parse_environment(nullptr, nullptr, nullptr, "x", "1", nullptr, 42).error,
            Catch::Contains("LISTEN_PID"));
        CHECK_THAT(
            systemd::parse_environment(nullptr, nullptr, nullptr, "42", "0", nullptr, 42).error,
            Catch::Contains("LISTEN_FDS"));
    }
}

TEST_CASE("systemd notifier: datagrams reach a path and an abstract socket", "[systemd]") {
    TempDir dir;
    NotifySocket listener(dir.file("notify"));
    systemd::Notifier n(listener.path());
    REQUIRE(n.enabled());
    REQUIRE(n.notify("READY=1\nSTATUS=serving"));
    CHECK(listener.next(5s) == "READY=1\nSTATUS=serving");
    REQUIRE(n.reloading());
    auto m = listener.next(5s);
    CHECK_THAT(m, Catch::StartsWith("RELOADING=1\nMONOTONIC_USEC="));
    CHECK(m.size() > std::string("RELOADING=1\nMONOTONIC_USEC=").size());

    CHECK_FALSE(systemd::Notifier("").notify("READY=1"));
    CHECK_FALSE(systemd::Notifier(dir.file("nobody-listens")).notify("READY=1"));

    // An abstract socket: "@name" in the variable, a leading NUL on the wire.
    const std::string name = "clayhook-test-" + std::to_string(::getpid());
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name.data(), name.size());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size())) == 0);
    REQUIRE(systemd::Notifier("@" + name).notify("WATCHDOG=1"));
    char buf[64];
    pollfd p{fd, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);
    ssize_t got = ::recv(fd, buf, sizeof buf, 0);
    ::close(fd);
    CHECK(std::string(buf, static_cast<size_t>(std::max<ssize_t>(got, 0))) == "WATCHDOG=1");
}

TEST_CASE("watchdog: fed only while every probe makes progress", "[systemd]") {
    std::ostringstream out;
    Logger log(out);
    std::atomic<int> feeds{0};
    std::atomic<bool> intake_ok{true}, dispatcher_ok{true};
    std::atomic<int> dispatcher_asked{0};
    std::vector<Watchdog::Probe> probes;
    probes.push_back({"intake", [&](std::string& why) {
                          if (intake_ok) return true;
                          why = "no answer";
                          return false;
                      }});
    probes.push_back({"dispatcher", [&](std::string& why) {
                          ++dispatcher_asked;
                          if (dispatcher_ok) return true;
                          why = "stuck";
                          return false;
                      }});
    Watchdog dog(
        80ms, std::move(probes), [&] { ++feeds; }, log);
    CHECK(dog.tick() == 20ms);
    REQUIRE(wait_until([&] { return feeds.load() >= 3; }, 10s));

    dispatcher_ok = false;
    REQUIRE(
        wait_until([&] { return out.str().find("probe=dispatcher") != std::string::npos; }, 10s));
    // Once the failure is seen, no more feeding: a few ticks pass unfed.
    int asked = dispatcher_asked.load(), fed = feeds.load();
    REQUIRE(wait_until([&] { return dispatcher_asked.load() >= asked + 4; }, 10s));
    CHECK(feeds.load() <= fed + 1);  // at most the tick that was running
    CHECK_THAT(out.str(), Catch::Contains("reason=stuck"));
    CHECK_THAT(out.str(), Catch::Contains("level=error"));

    dispatcher_ok = true;
    REQUIRE(wait_until([&] { return feeds.load() >= fed + 3; }, 10s));
    CHECK_THAT(out.str(), Catch::Contains("making progress again"));

    // The first failing probe is the one named; a later one is not asked.
    intake_ok = false;
    REQUIRE(wait_until([&] { return out.str().find("probe=intake") != std::string::npos; }, 10s));
    asked = dispatcher_asked.load();
    fed = feeds.load();
    REQUIRE(wait_until([&] { return out.str().find("reason=\"no answer\"") != std::string::npos; },
                       10s));
    CHECK(feeds.load() <= fed + 1);
    CHECK(dispatcher_asked.load() <= asked + 1);
}

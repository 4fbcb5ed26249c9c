// The per-peer connection count behind listener.max_connections_per_peer.
#include "http/PeerLimiter.h"

#include <Poco/Net/IPAddress.h>

#include <catch2/catch.hpp>

using namespace clayhook;
using Poco::Net::IPAddress;

TEST_CASE("peer limiter: a peer past its cap is refused, others are not", "[http][peers]") {
    PeerLimiter p(2);
    CHECK(p.acquire(10, "127.0.0.2"));
    CHECK(p.acquire(11, "127.0.0.2"));
    CHECK_FALSE(p.acquire(12, "127.0.0.2"));
    CHECK(p.acquire(12, "127.0.0.3"));
    CHECK(p.count("127.0.0.2") == 2);
    p.release(10);
    CHECK(p.count("127.0.0.2") == 1);
    CHECK(p.acquire(13, "127.0.0.2"));
    p.release(99);  // unknown: nothing happens
    CHECK(p.count("127.0.0.2") == 2);
}

TEST_CASE("peer limiter: a descriptor reused without release gives its place back",
          "[http][peers]") {
    PeerLimiter p(1);
    CHECK(p.acquire(7, "127.0.0.2"));
    // fd 7 was dropped unserved (never released) and the kernel hands it out again.
    CHECK(p.acquire(7, "127.0.0.3"));
    CHECK(p.count("127.0.0.2") == 0);
    CHECK(p.acquire(8, "127.0.0.2"));
}

TEST_CASE("peer limiter: 0 means no cap", "[http][peers]") {
    PeerLimiter p(0);
    for (int fd = 0; fd < 1000; ++fd)
        CHECK(p.acquire(fd, "127.0.0.2"));
    CHECK(p.count("127.0.0.2") == 1000);
}

TEST_CASE("peer limiter: IPv6 peers by /64, IPv4-mapped as IPv4", "[http][peers]") {
    CHECK(PeerLimiter::peer_key(IPAddress("127.0.0.2")) == "127.0.0.2");
    CHECK(PeerLimiter::peer_key(IPAddress("2001:db8:1:2:aaaa::1")) == "2001:db8:1:2::/64");
    CHECK(PeerLimiter::peer_key(IPAddress("2001:db8:1:2:bbbb::9")) == "2001:db8:1:2::/64");
    CHECK(PeerLimiter::peer_key(IPAddress("2001:db8:1:3::1")) == "2001:db8:1:3::/64");
    CHECK(PeerLimiter::peer_key(IPAddress("::ffff:10.1.2.3")) == "10.1.2.3");
}

#pragma once

// Counts open connections per peer, for a per-peer cap at accept. A peer is
// an IPv4 address, or an IPv6 /64 (one host usually owns a whole /64);
// IPv4-mapped IPv6 addresses count as their IPv4 address.
//
// Connections are known by their socket descriptor: acquire() at accept,
// release() when the connection ends, before its socket is closed. A
// connection dropped without release() (Poco discards queued connections at
// stop) is noticed when its descriptor is reused by a later accept, and its
// place given back then, so the counts cannot leak.

#include <Poco/Net/SocketAddress.h>

#include <mutex>
#include <string>
#include <unordered_map>

namespace clayhook {

class PeerLimiter {
  public:
    explicit PeerLimiter(int per_peer) : per_peer_(per_peer) {}  // 0: no cap

    // The peer key of an address ("127.0.0.2", "2001:db8:1:2::/64").
    static std::string peer_key(const Poco::Net::IPAddress& address);

    // Counts connection `fd` from `peer`; false (nothing counted) when the
    // peer already has its cap of connections.
    bool acquire(int fd, const std::string& peer);
    void release(int fd);
    int count(const std::string& peer) const;

  private:
    int per_peer_;
    mutable std::mutex mu_;
    std::unordered_map<std::string, int> counts_;
    std::unordered_map<int, std::string> owners_;  // fd → peer
    void drop_locked(int fd);
};

}  // namespace clayhook

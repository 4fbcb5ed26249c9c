#include "http/PeerLimiter.h"

#include <Poco/Net/IPAddress.h>

#include <cstring>

namespace clayhook {

std::string PeerLimiter::peer_key(const Poco::Net::IPAddress& address) {
    if (address.family() == Poco::Net::IPAddress::IPv6) {
        if (address.isIPv4Mapped()) {
            auto* b = static_cast<const unsigned char*>(address.addr());
            return std::to_string(b[12]) + "." + std::to_string(b[13]) + "." +
                   std::to_string(b[14]) + "." + std::to_string(b[15]);
        }
        // The /64: the first eight bytes, the rest zero.
        unsigned char bytes[16] = {};
        std::memcpy(bytes, address.addr(), 8);
        return Poco::Net::IPAddress(bytes, sizeof bytes).toString() + "/64";
    }
    return address.toString();
}

void PeerLimiter::drop_locked(int fd) {
    auto it = owners_.find(fd);
    if (it == owners_.end()) return;
    auto c = counts_.find(it->second);
    if (c != counts_.end() && --c->second <= 0) counts_.erase(c);
    owners_.erase(it);
}

bool PeerLimiter::acquire(int fd, const std::string& peer) {
    std::lock_guard lk(mu_);
    drop_locked(fd);  // a descriptor reused: its earlier connection is gone
    int& n = counts_[peer];
    if (per_peer_ > 0 && n >= per_peer_) {
        if (n == 0) counts_.erase(peer);
        return false;
    }
    ++n;
    owners_.emplace(fd, peer);
    return true;
}

void PeerLimiter::release(int fd) {
    std::lock_guard lk(mu_);
    drop_locked(fd);
}

int PeerLimiter::count(const std::string& peer) const {
    std::lock_guard lk(mu_);
    auto it = counts_.find(peer);
    return it == counts_.end() ? 0 : it->second;
}

}  // namespace clayhook

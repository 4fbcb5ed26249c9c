#include "address_policy.hpp"

#include "outcome.hpp"
#include "text.hpp"
#include "url.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace clayhook::exportdl {

std::string Ip::text() const {
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(family, b.data(), buf, sizeof buf);
    return buf;
}

std::optional<Ip> Ip::mapped_v4() const {
    if (family != AF_INET6) return std::nullopt;
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(b.data(), kMapped, 12) != 0) return std::nullopt;
    Ip v4;
    std::copy(b.begin() + 12, b.end(), v4.b.begin());
    return v4;
}

std::optional<Ip> parse_ip(const std::string& s) {
    Ip ip;
    if (inet_pton(AF_INET, s.c_str(), ip.b.data()) == 1) return ip;
    ip.family = AF_INET6;
    if (inet_pton(AF_INET6, s.c_str(), ip.b.data()) == 1) return ip;
    return std::nullopt;
}

bool Cidr::contains(const Ip& ip) const {
    if (ip.family != base.family) {
        auto v4 = ip.mapped_v4();
        return v4 && contains(*v4);
    }
    int full = bits / 8;
    if (std::memcmp(ip.b.data(), base.b.data(), static_cast<size_t>(full)) != 0) return false;
    int rest = bits % 8;
    if (rest == 0) return true;
    auto mask = static_cast<uint8_t>(0xff << (8 - rest));
    return (ip.b[static_cast<size_t>(full)] & mask) == (base.b[static_cast<size_t>(full)] & mask);
}

std::optional<Cidr> parse_cidr(const std::string& s) {
    size_t slash = s.find('/');
    auto ip = parse_ip(s.substr(0, slash));
    if (!ip) return std::nullopt;
    int max = ip->family == AF_INET ? 32 : 128;
    int bits = max;
    if (slash != std::string::npos) {
        std::string b = s.substr(slash + 1);
        if (!all_digits(b) || b.size() > 3) return std::nullopt;
        bits = std::stoi(b);
        if (bits > max) return std::nullopt;
    }
    return Cidr{*ip, bits};
}

namespace {

struct Range {
    const char* cidr;
    const char* what;
};

// The IANA special-purpose registries (RFC 6890 and later), less what is
// globally reachable unicast. The first range that matches names the reason,
// so a narrower range comes before a wider one that holds it.
constexpr Range kV4[] = {
    {"0.0.0.0/8", "this-network"},
    {"10.0.0.0/8", "private"},
    {"100.64.0.0/10", "shared (carrier-grade NAT)"},
    {"127.0.0.0/8", "loopback"},
    {"169.254.0.0/16", "link-local"},
    {"172.16.0.0/12", "private"},
    {"192.0.0.0/24", "IETF protocol assignments"},
    {"192.0.2.0/24", "documentation"},
    {"192.88.99.0/24", "6to4 relay anycast"},
    {"192.168.0.0/16", "private"},
    {"198.18.0.0/15", "benchmarking"},
    {"198.51.100.0/24", "documentation"},
    {"203.0.113.0/24", "documentation"},
    {"224.0.0.0/4", "multicast"},
    {"255.255.255.255/32", "broadcast"},
    {"240.0.0.0/4", "reserved"},
};

// Transition forms whose IPv4 address cannot be checked reliably are
// refused whole: local-use NAT64 (the IPv4 address sits where the operator's
// prefix length puts it), 6to4 and Teredo (tunnels to an IPv4 address,
// deprecated) and IPv4-translated (SIIT).
constexpr Range kV6[] = {
    {"::/128", "unspecified"},
    {"::1/128", "loopback"},
    {"::ffff:0:0:0/96", "IPv4-translated"},
    {"64:ff9b:1::/48", "local-use NAT64"},
    {"100::/64", "discard-only"},
    {"2001::/32", "Teredo"},
    {"2001:2::/48", "benchmarking"},
    {"2001::/23", "IETF protocol assignments"},
    {"2001:db8::/32", "documentation"},
    {"2002::/16", "6to4"},
    {"3fff::/20", "documentation"},
    {"5f00::/16", "segment routing (SRv6) SIDs"},
    {"fc00::/7", "unique-local (private)"},
    {"fe80::/10", "link-local"},
    {"fec0::/10", "site-local"},
    {"ff00::/8", "multicast"},
};

// IPv6 forms that carry an IPv4 address in their last 32 bits, used only
// when that address passes the IPv4 rules: mapped (::ffff:0:0/96, the kernel
// connects to the IPv4 address), IPv4-compatible (::/96, deprecated) and the
// well-known NAT64 prefix (64:ff9b::/96, which DNS64 hands out for public
// IPv4 hosts on IPv6-only networks).
constexpr Range kEmbedding[] = {
    {"::ffff:0:0/96", "IPv4-mapped"},
    {"::/96", "IPv4-compatible"},
    {"64:ff9b::/96", "NAT64"},
};

std::optional<std::string> first_match(const Ip& ip, const Range* begin, const Range* end) {
    for (const Range* r = begin; r != end; ++r)
        if (parse_cidr(r->cidr)->contains(ip)) return std::string(r->what) + " " + r->cidr;
    return std::nullopt;
}

}  // namespace

std::optional<std::string> special_range(const Ip& ip) {
    if (ip.family == AF_INET) return first_match(ip, std::begin(kV4), std::end(kV4));
    if (auto why = first_match(ip, std::begin(kV6), std::end(kV6))) return why;
    for (const auto& r : kEmbedding) {
        if (!parse_cidr(r.cidr)->contains(ip)) continue;
        Ip v4;
        std::copy(ip.b.begin() + 12, ip.b.end(), v4.b.begin());
        if (auto why = special_range(v4)) return std::string(r.what) + " " + *why;
    }
    return std::nullopt;
}

std::vector<SpecialRange> special_ranges() {
    std::vector<SpecialRange> out;
    for (const auto& r : kV4)
        out.push_back({r.cidr, r.what});
    for (const auto& r : kV6)
        out.push_back({r.cidr, r.what});
    return out;
}

std::vector<Resolved> resolve(const std::string& host, uint16_t port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    addrinfo* list = nullptr;
    int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
    if (rc != 0)
        try_later("cannot resolve the host '" + host +
                  "': " + (rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc)));
    std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(list, ::freeaddrinfo);
    std::vector<Resolved> out;
    for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
        Ip ip;
        if (ai->ai_family == AF_INET) {
            sockaddr_in sa{};
            std::memcpy(&sa, ai->ai_addr, sizeof sa);
            sa.sin_port = htons(port);
            std::memcpy(ip.b.data(), &sa.sin_addr, 4);
            Resolved r{ip, Poco::Net::SocketAddress(reinterpret_cast<const sockaddr*>(&sa),
                                                    static_cast<poco_socklen_t>(sizeof sa))};
            out.push_back(r);
        } else if (ai->ai_family == AF_INET6) {
            sockaddr_in6 sa{};
            std::memcpy(&sa, ai->ai_addr, sizeof sa);
            sa.sin6_port = htons(port);
            ip.family = AF_INET6;
            std::memcpy(ip.b.data(), &sa.sin6_addr, 16);
            Resolved r{ip, Poco::Net::SocketAddress(reinterpret_cast<const sockaddr*>(&sa),
                                                    static_cast<poco_socklen_t>(sizeof sa))};
            out.push_back(r);
        } else {
            continue;
        }
        for (size_t i = 0; i + 1 < out.size(); ++i) {
            if (out[i].ip.family == out.back().ip.family && out[i].ip.b == out.back().ip.b) {
                out.pop_back();
                break;
            }
        }
    }
    if (out.empty()) try_later("the host '" + host + "' has no IPv4 or IPv6 address");
    return out;
}

std::string normalise_allowed_host(const std::string& entry) {
    std::string h = lower(trim(entry));
    if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
    if (auto v6 = canonical_ipv6(h)) return *v6;
    if (!h.empty() && h.back() == '.') h.pop_back();
    bool suffix = !h.empty() && h.front() == '.';
    std::string name = suffix ? h.substr(1) : h;
    // parse_url takes no other IPv4 form than a.b.c.d, and no suffix of an
    // address: such an entry could never match.
    if (!valid_host_name(name) || (ends_in_number(name) && (suffix || !dotted_quad(name))))
        throw std::runtime_error("config: 'allowed_hosts': '" + entry +
                                 "' is not a host name (\"exports.example.com\") or a "
                                 "suffix (\".example.com\")");
    return h;
}

AddressPolicy::AddressPolicy(std::vector<std::string> allowed_hosts,
                             std::vector<Cidr> allowed_cidrs, bool allow_private)
    : allowed_hosts_(std::move(allowed_hosts)),
      allowed_cidrs_(std::move(allowed_cidrs)),
      allow_private_(allow_private) {}

bool AddressPolicy::host_allowed(const std::string& host) const {
    for (const auto& a : allowed_hosts_) {
        if (a.empty()) continue;
        if (a.front() == '.') {
            if (host.size() > a.size() && host.compare(host.size() - a.size(), a.size(), a) == 0)
                return true;
        } else if (host == a) {
            return true;
        }
    }
    return false;
}

std::optional<std::string> AddressPolicy::address_refusal(const Ip& ip) const {
    auto why = special_range(ip);
    if (!why || allow_private_) return std::nullopt;
    for (const auto& c : allowed_cidrs_)
        if (c.contains(ip)) return std::nullopt;
    return why;
}

std::vector<Resolved> AddressPolicy::usable(const std::string& host,
                                            const std::vector<Resolved>& resolved) const {
    std::vector<Resolved> out;
    std::string refused;
    for (const auto& r : resolved) {
        if (auto why = address_refusal(r.ip)) {
            refused += (refused.empty() ? "" : ", ") + r.ip.text() + " (" + *why + ")";
        } else {
            out.push_back(r);
        }
    }
    if (out.empty())
        refuse("the host '" + host + "' resolves to refused address(es): " + refused +
               "; private, loopback and link-local addresses need allow_private_addresses or "
               "allowed_cidrs");
    return out;
}

std::vector<Resolved> AddressPolicy::resolve_allowed(const std::string& host, uint16_t port) const {
    return usable(host, resolve(host, port));
}

}  // namespace clayhook::exportdl

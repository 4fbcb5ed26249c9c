// Where the export-downloader may connect: IP addresses and ranges, the
// special-purpose ranges that are not public unicast, the allow-lists from
// the config (host names, address ranges) and resolution with the policy
// applied. The addresses resolve() returns are the ones that get checked and
// the ones that get connected to (no second lookup).
#pragma once

#include <Poco/Net/SocketAddress.h>

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace clayhook::exportdl {

struct Ip {
    int family = AF_INET;         // AF_INET or AF_INET6
    std::array<uint8_t, 16> b{};  // network order; an IPv4 address in the first 4

    std::string text() const;
    // The IPv4 address carried in an IPv6 one (mapped ::ffff:a.b.c.d), if any.
    std::optional<Ip> mapped_v4() const;
};

// An address as text, strictly: a.b.c.d (no leading zeros, octal, hex or
// short forms) or an IPv6 address (no zone id). nullopt otherwise.
std::optional<Ip> parse_ip(const std::string& s);

struct Cidr {
    Ip base;
    int bits = 0;

    // An IPv4 range also contains the IPv4-mapped IPv6 form of its addresses.
    bool contains(const Ip& ip) const;
};

// "10.1.0.0/16", "fd00::/8", or one address ("10.1.2.3" is 10.1.2.3/32).
std::optional<Cidr> parse_cidr(const std::string& s);

// Why an address is not a public unicast one ("loopback 127.0.0.0/8"), or
// nullopt when it is.
std::optional<std::string> special_range(const Ip& ip);

// The ranges special_range() refuses whole, IPv4 then IPv6, in the order it
// tries them; `what` names the range in its reasons. The IPv6 forms that
// embed an IPv4 address (mapped ::ffff:0:0/96, compatible ::/96, NAT64
// 64:ff9b::/96) are not among them: the IPv4 address they carry decides.
struct SpecialRange {
    std::string cidr;
    std::string what;
};
std::vector<SpecialRange> special_ranges();

struct Resolved {
    Ip ip;
    Poco::Net::SocketAddress address;  // ip and the port, to connect to
};

// getaddrinfo, once per hop, deduplicated, in the resolver's order. Throws a
// retry when the host does not resolve.
std::vector<Resolved> resolve(const std::string& host, uint16_t port);

// An allowed_hosts entry as host_allowed compares it: lower case, no
// trailing dot, an IPv6 address canonical and without brackets. Throws
// std::runtime_error ("config: 'allowed_hosts': ...") for an entry that is
// not a host name, an address or a suffix (".example.com").
std::string normalise_allowed_host(const std::string& entry);

// The decision: which hosts (before DNS) and which addresses (after) a
// download may use.
class AddressPolicy {
  public:
    AddressPolicy() = default;
    // `allowed_hosts` as normalise_allowed_host makes them.
    AddressPolicy(std::vector<std::string> allowed_hosts, std::vector<Cidr> allowed_cidrs,
                  bool allow_private);

    // An exact name or address, or a name under a ".suffix".
    bool host_allowed(const std::string& host) const;
    // Why an address may not be used, or nullopt when it may.
    std::optional<std::string> address_refusal(const Ip& ip) const;
    // The addresses of `resolved` that may be used, in order. Refuses,
    // naming every address and its range, when none may.
    std::vector<Resolved> usable(const std::string& host,
                                 const std::vector<Resolved>& resolved) const;
    // resolve() and usable().
    std::vector<Resolved> resolve_allowed(const std::string& host, uint16_t port) const;

    const std::vector<std::string>& allowed_hosts() const { return allowed_hosts_; }

  private:
    std::vector<std::string> allowed_hosts_;
    std::vector<Cidr> allowed_cidrs_;
    bool allow_private_ = false;
};

}  // namespace clayhook::exportdl

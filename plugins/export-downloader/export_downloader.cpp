// export-downloader: on table.export.completed, downloads the export's file
// (export_url) into a directory, streaming it to disk, and checks it.
//
// Safe by default: https only, an allow-list of host names, no private,
// loopback or link-local addresses (checked after DNS, and the connection
// goes to the very address that was checked), redirects re-checked hop by
// hop, a size cap and timeouts. Atomic: a temporary file, fsync, rename.
// Idempotent: an export already on disk is not fetched again. Beside each
// download NAME go its side files NAME.sha256 and, for a file that failed a
// check, NAME.rejected; no download may be named like one.
//
// config (docs/plugins/export-downloader.md):
//   directory                where files go (required; created if missing)
//   allowed_hosts            host names ("exports.example.com") and suffixes
//                            (".example.com") (required, non-empty)
//   allow_private_addresses  default false
//   allowed_cidrs            address ranges allowed even if private (default [])
//   allow_http               default false
//   max_bytes                default 1073741824 (1 GiB)
//   max_redirects            default 3
//   timeout_ms               connect and each wait for data (default 60000)
//   max_duration_ms          a whole attempt (default 1800000)
//   ca_file                  an extra CA bundle (PEM); TLS is always verified
#include <clayhook/plugin.hpp>

#include <Poco/DateTime.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>
#include <Poco/InflatingStream.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SecureStreamSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/String.h>
#include <Poco/Timespan.h>
#include <Poco/Timestamp.h>
#include <Poco/URI.h>

#include <openssl/evp.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <istream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace json = clayhook::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int64_t kDefaultMaxBytes = int64_t{1} << 30;
constexpr int64_t kDefaultMaxRedirects = 3;
constexpr int64_t kDefaultTimeoutMs = 60'000;
constexpr int64_t kDefaultMaxDurationMs = 30 * 60'000;
constexpr size_t kBufferSize = 64 * 1024;
constexpr milliseconds kBusyRetry{5000};
constexpr milliseconds kMaxRetryAfter{24 * 3600 * 1000};

// The side files of a download NAME: NAME.sha256 (its checksum) and
// NAME.rejected (a file that failed a check, set aside). parse_event refuses
// every download name that ends in one of these, so that a download can
// never pass for another's side file, nor be overwritten by one.
constexpr std::string_view kSumSuffix = ".sha256";
constexpr std::string_view kRejectedSuffix = ".rejected";
constexpr std::string_view kSideSuffixes[] = {kSumSuffix, kRejectedSuffix};

// ---------------------------------------------------------------------------
// How an attempt ends when it does not succeed: thrown inside, turned into a
// Result in handle(). `final` is a fail (dead letter), otherwise a retry.

struct Outcome : std::runtime_error {
    Outcome(bool is_final, const std::string& why, milliseconds wait)
        : std::runtime_error(why), final(is_final), after(wait) {}
    bool final;
    milliseconds after;
};

[[noreturn]] void refuse(const std::string& why) {
    throw Outcome(true, why, milliseconds(0));
}
[[noreturn]] void try_later(const std::string& why, milliseconds after = milliseconds(0)) {
    throw Outcome(false, why, after);
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string trim(std::string_view s) {
    size_t b = s.find_first_not_of(" \t");
    if (b == std::string_view::npos) return {};
    size_t e = s.find_last_not_of(" \t");
    return std::string(s.substr(b, e - b + 1));
}

// Text from the server, fit for a reason or a log line: printable ASCII,
// at most `max` bytes.
std::string printable(std::string_view s, size_t max = 64) {
    std::string out;
    for (char c : s.substr(0, max))
        out += c >= 0x20 && c < 0x7f ? c : '?';
    if (s.size() > max) out += "...";
    return out;
}

bool all_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// ---------------------------------------------------------------------------
// SHA-256 (OpenSSL EVP)

class Sha256 {
  public:
    Sha256() : ctx_(EVP_MD_CTX_new()) {
        if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1)
            throw std::runtime_error("cannot initialise SHA-256");
    }
    ~Sha256() { EVP_MD_CTX_free(ctx_); }
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    void update(const char* data, size_t n) {
        if (EVP_DigestUpdate(ctx_, data, n) != 1) throw std::runtime_error("SHA-256 failed");
    }
    std::string hex() {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (EVP_DigestFinal_ex(ctx_, md, &len) != 1) throw std::runtime_error("SHA-256 failed");
        static constexpr char kHex[] = "0123456789abcdef";
        std::string out;
        for (unsigned int i = 0; i < len; ++i) {
            out += kHex[md[i] >> 4];
            out += kHex[md[i] & 15];
        }
        return out;
    }

  private:
    EVP_MD_CTX* ctx_;
};

std::string sha256_hex(std::string_view s) {
    Sha256 h;
    h.update(s.data(), s.size());
    return h.hex();
}

// ---------------------------------------------------------------------------
// URLs. Parsed by hand so that the request target is sent exactly as given
// (a signed URL must not be re-encoded), and so that nothing but scheme,
// host and path ever reaches a log line or a reason (the query may carry a
// token).

// Everything before the query and the fragment: what may be shown.
std::string redact(std::string_view url) {
    return std::string(url.substr(0, url.find_first_of("?#")));
}

struct Url {
    std::string scheme;  // "http" or "https"
    std::string host;    // lower case; an IPv6 literal without brackets
    uint16_t port = 0;
    bool explicit_port = false;
    bool ipv6 = false;
    std::string target;  // path and query, as given

    uint16_t default_port() const { return scheme == "https" ? 443 : 80; }
    std::string authority() const {
        std::string h = ipv6 ? "[" + host + "]" : host;
        if (port != default_port()) h += ":" + std::to_string(port);
        return h;
    }
    std::string origin() const { return scheme + "://" + authority(); }
    std::string path() const { return target.substr(0, target.find('?')); }
    std::string display() const { return origin() + path(); }
    std::string full() const { return origin() + target; }
};

bool valid_host_name(std::string_view h) {
    if (h.empty() || h.size() > 253 || h.front() == '.' || h.back() == '.') return false;
    if (h.find("..") != std::string_view::npos) return false;
    return std::all_of(h.begin(), h.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
    });
}

// Canonical text of an IPv6 literal (so "::0001" and "::1" compare equal).
std::optional<std::string> canonical_ipv6(const std::string& s) {
    in6_addr a{};
    if (inet_pton(AF_INET6, s.c_str(), &a) != 1) return std::nullopt;
    char buf[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, &a, buf, sizeof buf) == nullptr) return std::nullopt;
    return std::string(buf);
}

// Throws a refusal naming `what` ("export_url", "the redirect") when `s` is
// not an absolute http(s) URL this plugin can fetch.
Url parse_url(std::string_view s, const std::string& what) {
    const std::string shown = redact(s);
    auto bad = [&](const std::string& why) -> Url {
        refuse(what + " '" + shown + "' is not usable: " + why);
    };
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f)
            return bad("it contains a space, a control character or a non-ASCII byte");
    }
    size_t sep = s.find("://");
    if (sep == std::string_view::npos || sep == 0) return bad("not an absolute URL");
    Url url;
    url.scheme = lower(s.substr(0, sep));
    if (url.scheme != "http" && url.scheme != "https")
        return bad("the scheme '" + url.scheme + "' is not http or https");
    std::string_view rest = s.substr(sep + 3);
    size_t end = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, end);
    std::string_view after = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
    if (authority.find('@') != std::string_view::npos)
        return bad("user names and passwords in URLs are not supported");
    std::string_view port_text;
    bool has_port = false;
    if (!authority.empty() && authority.front() == '[') {
        size_t close = authority.find(']');
        if (close == std::string_view::npos) return bad("an unclosed '[' in the host");
        auto v6 = canonical_ipv6(std::string(authority.substr(1, close - 1)));
        if (!v6)
            return bad("'" + std::string(authority.substr(0, close + 1)) +
                       "' is not an IPv6 address");
        url.host = *v6;
        url.ipv6 = true;
        std::string_view tail = authority.substr(close + 1);
        if (!tail.empty()) {
            if (tail.front() != ':') return bad("unexpected text after the IPv6 address");
            port_text = tail.substr(1);
            has_port = true;
        }
    } else {
        size_t colon = authority.rfind(':');
        if (colon != std::string_view::npos) {
            port_text = authority.substr(colon + 1);
            has_port = true;
            authority = authority.substr(0, colon);
        }
        url.host = lower(authority);
        if (!url.host.empty() && url.host.back() == '.') url.host.pop_back();
        if (!valid_host_name(url.host)) return bad("the host '" + url.host + "' is not valid");
    }
    url.port = url.default_port();
    if (has_port && !port_text.empty()) {
        if (!all_digits(port_text) || port_text.size() > 5) return bad("the port is not a number");
        unsigned long p = std::stoul(std::string(port_text));
        if (p == 0 || p > 65535) return bad("the port is out of range");
        url.port = static_cast<uint16_t>(p);
        url.explicit_port = true;
    }
    url.target = std::string(after.substr(0, after.find('#')));
    if (url.target.empty() || url.target.front() == '?') url.target = "/" + url.target;
    return url;
}

// Where a redirect's Location points, as an absolute URL.
std::string resolve_location(const Url& base, std::string location) {
    location = trim(location);
    location = location.substr(0, location.find('#'));
    size_t colon = location.find(':');
    size_t slash = location.find_first_of("/?");
    bool has_scheme = colon != std::string::npos && colon > 0 &&
                      (slash == std::string::npos || colon < slash) &&
                      std::isalpha(static_cast<unsigned char>(location[0]));
    if (has_scheme) return location;
    if (location.rfind("//", 0) == 0) return base.scheme + ":" + location;
    if (!location.empty() && location.front() == '/') return base.origin() + location;
    if (!location.empty() && location.front() == '?') return base.origin() + base.path() + location;
    // A relative path: let Poco merge it and remove dot segments.
    try {
        Poco::URI uri(base.origin() + base.path());
        uri.resolve(location);
        return uri.toString();
    } catch (const Poco::Exception& e) {
        refuse("the redirect to '" + redact(location) + "' cannot be resolved: " + e.message());
    }
}

// ---------------------------------------------------------------------------
// Addresses

struct Ip {
    int family = AF_INET;  // AF_INET or AF_INET6
    std::array<uint8_t, 16> b{};

    std::string text() const {
        char buf[INET6_ADDRSTRLEN];
        inet_ntop(family, b.data(), buf, sizeof buf);
        return buf;
    }
    // The IPv4 address carried in an IPv6 one (mapped ::ffff:a.b.c.d), if any.
    std::optional<Ip> mapped_v4() const {
        if (family != AF_INET6) return std::nullopt;
        static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (std::memcmp(b.data(), kMapped, 12) != 0) return std::nullopt;
        Ip v4;
        std::copy(b.begin() + 12, b.end(), v4.b.begin());
        return v4;
    }
};

std::optional<Ip> parse_ip(const std::string& s) {
    Ip ip;
    if (inet_pton(AF_INET, s.c_str(), ip.b.data()) == 1) return ip;
    ip.family = AF_INET6;
    if (inet_pton(AF_INET6, s.c_str(), ip.b.data()) == 1) return ip;
    return std::nullopt;
}

struct Cidr {
    Ip base;
    int bits = 0;

    bool contains(const Ip& ip) const {
        if (ip.family != base.family) {
            auto v4 = ip.mapped_v4();
            return v4 && contains(*v4);
        }
        int full = bits / 8;
        if (std::memcmp(ip.b.data(), base.b.data(), static_cast<size_t>(full)) != 0) return false;
        int rest = bits % 8;
        if (rest == 0) return true;
        auto mask = static_cast<uint8_t>(0xff << (8 - rest));
        return (ip.b[static_cast<size_t>(full)] & mask) ==
               (base.b[static_cast<size_t>(full)] & mask);
    }
};

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

// Why an address is not a public unicast one ("loopback 127.0.0.0/8"), or
// nullopt when it is.
std::optional<std::string> special_range(const Ip& ip) {
    struct Range {
        const char* cidr;
        const char* what;
    };
    static const Range kV4[] = {
        {"0.0.0.0/8", "this-network"},
        {"10.0.0.0/8", "private"},
        {"100.64.0.0/10", "shared (carrier-grade NAT)"},
        {"127.0.0.0/8", "loopback"},
        {"169.254.0.0/16", "link-local"},
        {"172.16.0.0/12", "private"},
        {"192.0.0.0/24", "IETF protocol assignments"},
        {"192.168.0.0/16", "private"},
        {"198.18.0.0/15", "benchmarking"},
        {"224.0.0.0/4", "multicast"},
        {"240.0.0.0/4", "reserved"},
    };
    // Transition forms whose IPv4 address cannot be checked reliably are
    // refused whole: local-use NAT64 (the IPv4 address sits where the
    // operator's prefix length puts it), 6to4 and Teredo (tunnels to an IPv4
    // address, deprecated) and IPv4-translated (SIIT).
    static const Range kV6[] = {
        {"::/128", "unspecified"},
        {"::1/128", "loopback"},
        {"::ffff:0:0:0/96", "IPv4-translated"},
        {"64:ff9b:1::/48", "local-use NAT64"},
        {"2001::/32", "Teredo"},
        {"2002::/16", "6to4"},
        {"fc00::/7", "unique-local (private)"},
        {"fe80::/10", "link-local"},
        {"fec0::/10", "site-local"},
        {"ff00::/8", "multicast"},
    };
    if (ip.family == AF_INET) {
        for (const auto& r : kV4)
            if (parse_cidr(r.cidr)->contains(ip)) return std::string(r.what) + " " + r.cidr;
        return std::nullopt;
    }
    for (const auto& r : kV6)
        if (parse_cidr(r.cidr)->contains(ip)) return std::string(r.what) + " " + r.cidr;
    // IPv6 forms that carry an IPv4 address in their last 32 bits, used
    // only when that address passes the IPv4 rules: mapped (::ffff:0:0/96,
    // the kernel connects to the IPv4 address), IPv4-compatible (::/96,
    // deprecated) and the well-known NAT64 prefix (64:ff9b::/96, which DNS64
    // hands out for public IPv4 hosts on IPv6-only networks).
    static const Range kEmbedding[] = {
        {"::ffff:0:0/96", "IPv4-mapped"},
        {"::/96", "IPv4-compatible"},
        {"64:ff9b::/96", "NAT64"},
    };
    for (const auto& r : kEmbedding) {
        if (!parse_cidr(r.cidr)->contains(ip)) continue;
        Ip v4;
        std::copy(ip.b.begin() + 12, ip.b.end(), v4.b.begin());
        if (auto why = special_range(v4)) return std::string(r.what) + " " + *why;
    }
    return std::nullopt;
}

struct Resolved {
    Ip ip;
    Poco::Net::SocketAddress address;
};

// getaddrinfo, once per hop: the addresses returned here are the ones that
// get checked and the ones that get connected to.
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

// ---------------------------------------------------------------------------
// Time: each wait is bounded by timeout_ms, and the whole attempt by
// max_duration_ms.

class Budget {
  public:
    Budget(milliseconds idle, milliseconds total)
        : idle_(idle), total_(total), deadline_(Clock::now() + total) {}

    bool expired() const { return Clock::now() >= deadline_; }
    // How long the next wait may last.
    Poco::Timespan next() const {
        auto left = std::chrono::duration_cast<milliseconds>(deadline_ - Clock::now());
        if (left <= milliseconds(0)) try_later(over());
        auto ms = std::min(left, idle_);
        return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(ms.count()) * 1000);
    }
    std::string over() const {
        return "the download took longer than max_duration_ms (" + std::to_string(total_.count()) +
               " ms)";
    }
    milliseconds idle() const { return idle_; }

  private:
    milliseconds idle_;
    milliseconds total_;
    Clock::time_point deadline_;
};

// ---------------------------------------------------------------------------
// Reading HTTP: the connection's bytes, then the body's (framing decoded,
// truncation detected).

// The socket as a buffered streambuf; every read is bounded by the budget.
class SocketBuf : public std::streambuf {
  public:
    SocketBuf(Poco::Net::StreamSocket& socket, const Budget& budget)
        : socket_(socket), budget_(budget), buf_(kBufferSize) {}

  protected:
    int_type underflow() override {
        if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
        socket_.setReceiveTimeout(budget_.next());
        int n = socket_.receiveBytes(buf_.data(), static_cast<int>(buf_.size()));
        if (n <= 0) return traits_type::eof();
        setg(buf_.data(), buf_.data(), buf_.data() + n);
        return traits_type::to_int_type(*gptr());
    }

  private:
    Poco::Net::StreamSocket& socket_;
    const Budget& budget_;
    std::vector<char> buf_;
};

// Up to `want` bytes of what `src` has, waiting for at most one read; 0 at
// its end.
size_t read_some(std::streambuf& src, char* out, size_t want) {
    if (src.sgetc() == std::streambuf::traits_type::eof()) return 0;
    std::streamsize avail = src.in_avail();
    auto n = static_cast<std::streamsize>(
        std::min(want, static_cast<size_t>(std::max<std::streamsize>(avail, 1))));
    return static_cast<size_t>(src.sgetn(out, n));
}

// The body of a response: Content-Length, chunked or until the connection
// closes. A body cut short throws a retry; more than `limit` bytes on the
// wire throws a refusal.
class BodyBuf : public std::streambuf {
  public:
    enum class Framing { length, chunked, close };

    BodyBuf(std::streambuf& src, Framing framing, uint64_t length, uint64_t limit)
        : src_(src), framing_(framing), remaining_(length), limit_(limit), buf_(kBufferSize) {}

    uint64_t wire_bytes() const { return wire_; }

    // The first n bytes of the body (fewer if it is shorter), not consumed.
    std::string_view peek(size_t n) {
        size_t have = gptr() == nullptr ? 0 : static_cast<size_t>(egptr() - gptr());
        if (have < n) {
            if (have > 0) std::memmove(buf_.data(), gptr(), have);
            while (have < n) {
                size_t got = fetch(buf_.data() + have, buf_.size() - have);
                if (got == 0) break;
                have += got;
            }
            setg(buf_.data(), buf_.data(), buf_.data() + have);
        }
        return {buf_.data() + (gptr() - eback()), std::min(have, n)};
    }

  protected:
    int_type underflow() override {
        if (gptr() != nullptr && gptr() < egptr()) return traits_type::to_int_type(*gptr());
        size_t got = fetch(buf_.data(), buf_.size());
        if (got == 0) return traits_type::eof();
        setg(buf_.data(), buf_.data(), buf_.data() + got);
        return traits_type::to_int_type(*gptr());
    }

  private:
    size_t fetch(char* out, size_t cap) {
        if (done_) return 0;
        size_t got = 0;
        try {
            got = fetch_framed(out, cap);
        } catch (const Poco::TimeoutException&) {
            throw;  // reported with the time limits in force
        } catch (const Poco::Exception& e) {
            try_later("the connection failed after " + std::to_string(wire_) +
                      " body bytes: " + e.displayText());
        }
        wire_ += got;
        if (wire_ > limit_)
            refuse("the export is too large: its body is more than max_bytes (" +
                   std::to_string(limit_) + ") bytes");
        return got;
    }

    size_t fetch_framed(char* out, size_t cap) {
        switch (framing_) {
            case Framing::length: {
                if (remaining_ == 0) {
                    done_ = true;
                    return 0;
                }
                size_t got =
                    read_some(src_, out, static_cast<size_t>(std::min<uint64_t>(cap, remaining_)));
                if (got == 0)
                    try_later("the body was cut off: the connection closed after " +
                              std::to_string(wire_) + " of " + std::to_string(wire_ + remaining_) +
                              " bytes (Content-Length)");
                remaining_ -= got;
                return got;
            }
            case Framing::chunked: {
                if (remaining_ == 0) {
                    if (started_) expect_empty_line();
                    started_ = true;
                    uint64_t size = chunk_size(line());
                    if (size == 0) {
                        for (int i = 0; !line().empty(); ++i)  // trailer fields
                            if (i > 100) try_later("too many trailer fields after a chunked body");
                        done_ = true;
                        return 0;
                    }
                    remaining_ = size;
                }
                size_t got =
                    read_some(src_, out, static_cast<size_t>(std::min<uint64_t>(cap, remaining_)));
                if (got == 0) cut_chunked();
                remaining_ -= got;
                return got;
            }
            case Framing::close:
                break;
        }
        size_t got = read_some(src_, out, cap);
        if (got == 0) done_ = true;
        return got;
    }

    [[noreturn]] void cut_chunked() const {
        try_later("the body was cut off: the connection closed inside the chunked body after " +
                  std::to_string(wire_) + " bytes");
    }

    // One line (without CR LF) of the chunked framing.
    std::string line() {
        std::string s;
        for (;;) {
            int c = src_.sbumpc();
            if (c == traits_type::eof()) cut_chunked();
            if (c == '\n') break;
            if (s.size() > 4096) try_later("a chunked-encoding line is too long");
            s += static_cast<char>(c);
        }
        if (!s.empty() && s.back() == '\r') s.pop_back();
        return s;
    }
    void expect_empty_line() {
        if (!line().empty()) try_later("the chunked encoding is malformed (no CRLF after a chunk)");
    }
    static uint64_t chunk_size(const std::string& l) {
        std::string hex = trim(l.substr(0, l.find(';')));
        if (hex.empty() || hex.size() > 15 || !std::all_of(hex.begin(), hex.end(), [](char c) {
                return std::isxdigit(static_cast<unsigned char>(c));
            }))
            try_later("the chunked encoding is malformed (chunk size '" + hex + "')");
        return std::stoull(hex, nullptr, 16);
    }

    std::streambuf& src_;
    Framing framing_;
    uint64_t remaining_;  // of the Content-Length, or of the current chunk
    uint64_t limit_;
    uint64_t wire_ = 0;
    bool done_ = false;
    bool started_ = false;
    std::vector<char> buf_;
};

// ---------------------------------------------------------------------------
// CSV records, RFC 4180: a record ends at a newline outside double quotes
// (so a quoted field may hold newlines); "" inside quotes is a quote, which
// toggling handles. A last record without a newline counts; empty lines do
// not. Any delimiter works; a stray quote inside an unquoted field (not
// RFC 4180) throws the count off, and the file goes aside for a person.

class CsvCounter {
  public:
    void feed(const char* p, size_t n) {
        for (size_t i = 0; i < n; ++i) {
            char c = p[i];
            if (c == '"') {
                quoted_ = !quoted_;
                content_ = true;
            } else if (c == '\n' && !quoted_) {
                if (content_) ++records_;
                content_ = false;
            } else if (c != '\r') {
                content_ = true;
            }
        }
    }
    uint64_t records() const { return records_ + (content_ ? 1 : 0); }
    uint64_t data_rows() const { return records() == 0 ? 0 : records() - 1; }
    bool open_quote() const { return quoted_; }

  private:
    uint64_t records_ = 0;
    bool content_ = false;
    bool quoted_ = false;
};

// ---------------------------------------------------------------------------
// Files

std::string errno_text() {
    return std::strerror(errno);
}

void fsync_dir(const fs::path& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) try_later("cannot open " + dir.string() + " to sync it: " + errno_text());
    int rc = ::fsync(fd);
    int saved = errno;
    ::close(fd);
    if (rc != 0) try_later("fsync of " + dir.string() + " failed: " + std::strerror(saved));
}

// A hidden temporary file beside the final one; removed unless renamed.
class TempFile {
  public:
    TempFile(const fs::path& dir, const std::string& name) {
        std::string t = (dir / ("." + name + ".part-XXXXXX")).string();
        fd_ = ::mkostemp(t.data(), O_CLOEXEC);
        if (fd_ < 0)
            try_later("cannot create a temporary file in " + dir.string() + ": " + errno_text());
        path_ = t;
        ::fchmod(fd_, 0640);
    }
    ~TempFile() {
        if (fd_ >= 0) ::close(fd_);
        if (!path_.empty()) ::unlink(path_.c_str());
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;

    void write(const char* p, size_t n) {
        while (n > 0) {
            ssize_t w = ::write(fd_, p, n);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) try_later("writing " + path_ + " failed: " + errno_text());
            p += w;
            n -= static_cast<size_t>(w);
        }
    }
    // fsync and close.
    void finish() {
        if (::fsync(fd_) != 0) try_later("fsync of " + path_ + " failed: " + errno_text());
        int rc = ::close(fd_);
        fd_ = -1;
        if (rc != 0) try_later("closing " + path_ + " failed: " + errno_text());
    }
    void rename_to(const fs::path& target) {
        if (::rename(path_.c_str(), target.c_str()) != 0)
            try_later("renaming " + path_ + " to " + target.string() + " failed: " + errno_text());
        path_.clear();
    }

  private:
    int fd_ = -1;
    std::string path_;
};

// [A-Za-z0-9._-] only; anything else becomes '_'.
std::string clean_name_part(std::string_view s, bool& changed) {
    std::string out;
    for (char c : s) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        out += ok ? c : '_';
        changed = changed || !ok;
    }
    return out;
}

// ---------------------------------------------------------------------------
// The event

struct Job {
    std::string table_id;
    std::string export_id;
    std::string url;  // as given (may carry a token: never logged)
    std::string format;
    std::optional<int64_t> row_count;
    std::string file_name;  // <table_id>_<export_id>.<format>, sanitised
};

std::string required_string(const json::Value& doc, const char* field) {
    const json::Value* v = doc.find(field);
    if (v == nullptr || v->is_null()) refuse(std::string("event field '") + field + "' is missing");
    if (!v->is_string() || v->as_string().empty())
        refuse(std::string("event field '") + field + "' must be a non-empty string");
    return v->as_string();
}

Job parse_event(std::string_view body) {
    json::Value doc;
    try {
        doc = json::parse(body);
    } catch (const std::exception& e) {
        refuse(std::string("the event body is not JSON: ") + e.what());
    }
    if (!doc.is_object()) refuse("the event body is not a JSON object");
    Job job;
    job.table_id = required_string(doc, "table_id");
    job.export_id = required_string(doc, "export_id");
    job.url = required_string(doc, "export_url");
    job.format = "csv";
    if (const json::Value* f = doc.find("format"); f != nullptr && !f->is_null()) {
        bool ok = f->is_string() && !f->as_string().empty() && f->as_string().size() <= 16 &&
                  std::all_of(f->as_string().begin(), f->as_string().end(), [](char c) {
                      return std::isalnum(static_cast<unsigned char>(c)) != 0;
                  });
        if (!ok) refuse("event field 'format' must be 1 to 16 letters or digits (like \"csv\")");
        job.format = lower(f->as_string());
    }
    if (const json::Value* r = doc.find("row_count"); r != nullptr && !r->is_null()) {
        if (!r->is_integer() || r->as_int64() < 0)
            refuse("event field 'row_count' must be a non-negative integer");
        job.row_count = r->as_int64();
    }
    if (job.format == "csv" && !job.row_count)
        refuse("event field 'row_count' is missing (it is needed to check a CSV export)");

    bool changed = false;
    std::string base =
        clean_name_part(job.table_id, changed) + "_" + clean_name_part(job.export_id, changed);
    if (base.front() == '.' || base.front() == '-') {
        base.front() = '_';  // no hidden files, nothing that reads as an option
        changed = true;
    }
    if (base.size() > 160) {
        base.resize(160);
        changed = true;
    }
    // Two different ids that clean to the same text must not share a file.
    if (changed) base += "-" + sha256_hex(job.table_id + '\0' + job.export_id).substr(0, 12);
    job.file_name = base + "." + job.format;
    // The name ends in "." + format, so only the format can make it look
    // like a side file (t_1 + e_1.csv + sha256 would be t_1_e_1.csv.sha256).
    for (std::string_view suffix : kSideSuffixes)
        if (job.file_name.ends_with(suffix))
            refuse("event field 'format' may not be '" + std::string(suffix.substr(1)) +
                   "': names ending in " + std::string(suffix) +
                   " are taken by the plugin's side files");
    return job;
}

std::optional<milliseconds> parse_retry_after(const std::string& value) {
    std::string v = trim(value);
    if (v.empty()) return std::nullopt;
    if (all_digits(v)) {
        if (v.size() > 9) return kMaxRetryAfter;
        return std::min(milliseconds(std::stoll(v) * 1000), kMaxRetryAfter);
    }
    Poco::DateTime when;
    int tzd = 0;
    if (!Poco::DateTimeParser::tryParse(Poco::DateTimeFormat::HTTP_FORMAT, v, when, tzd))
        return std::nullopt;
    when.makeUTC(tzd);
    Poco::Timestamp::TimeDiff us = when.timestamp() - Poco::Timestamp();
    if (us <= 0) return milliseconds(0);
    return std::min(milliseconds(us / 1000), kMaxRetryAfter);
}

// What one successful transfer produced.
struct Transfer {
    uint64_t bytes = 0;       // written to disk (after decompression)
    uint64_t wire_bytes = 0;  // received as body bytes
    uint64_t rows = 0;
    bool open_quote = false;
    bool gunzipped = false;
    std::string sha256;
};

// ---------------------------------------------------------------------------

class ExportDownloader {
  public:
    static constexpr const char* name = "export-downloader";
    static constexpr const char* version = "1.0.0";
    static constexpr const char* description =
        "downloads table exports (table.export.completed) into a directory, safely";
    static constexpr const char* events[] = {"table.export.completed"};
    static constexpr uint32_t max_concurrency = 4;

    ExportDownloader(clayhook::Host& host, const json::Value& config) : host_(host) {
        if (!config.is_object()) throw std::runtime_error("config: must be a mapping");
        static const std::set<std::string> kKeys = {
            "directory",       "allowed_hosts", "allow_private_addresses", "allowed_cidrs",
            "allow_http",      "max_bytes",     "max_redirects",           "timeout_ms",
            "max_duration_ms", "ca_file"};
        for (const auto& [key, value] : config.members()) {
            (void)value;
            if (kKeys.count(key) == 0)
                throw std::runtime_error("config: unknown key '" + key +
                                         "' (known: directory, allowed_hosts, "
                                         "allow_private_addresses, allowed_cidrs, allow_http, "
                                         "max_bytes, max_redirects, timeout_ms, "
                                         "max_duration_ms, ca_file)");
        }

        const json::Value* dir = config.find("directory");
        if (dir == nullptr || !dir->is_string() || dir->as_string().empty())
            throw std::runtime_error("config: 'directory' is required (a path)");
        dir_ = fs::path(dir->as_string());
        std::error_code ec;
        fs::create_directories(dir_, ec);
        if (ec || !fs::is_directory(dir_))
            throw std::runtime_error(
                "config: 'directory' " + dir_.string() +
                " cannot be created: " + (ec ? ec.message() : std::string("not a directory")));

        const json::Value* hosts = config.find("allowed_hosts");
        if (hosts == nullptr || !hosts->is_array() || hosts->size() == 0)
            throw std::runtime_error(
                "config: 'allowed_hosts' is required: a non-empty list of host names "
                "(\"exports.example.com\") or suffixes (\".example.com\")");
        for (const auto& h : hosts->items()) {
            if (!h.is_string()) throw std::runtime_error("config: 'allowed_hosts' holds strings");
            allowed_hosts_.push_back(normalise_allowed_host(h.as_string()));
        }

        allow_private_ = get_bool(config, "allow_private_addresses", false);
        allow_http_ = get_bool(config, "allow_http", false);
        if (const json::Value* c = config.find("allowed_cidrs"); c != nullptr && !c->is_null()) {
            if (!c->is_array())
                throw std::runtime_error(
                    "config: 'allowed_cidrs' is a list like [\"10.1.0.0/16\"]");
            for (const auto& item : c->items()) {
                auto cidr = item.is_string() ? parse_cidr(item.as_string()) : std::nullopt;
                if (!cidr)
                    throw std::runtime_error("config: 'allowed_cidrs': '" +
                                             (item.is_string() ? item.as_string() : "?") +
                                             "' is not an address range like 10.1.0.0/16");
                allowed_cidrs_.push_back(*cidr);
            }
        }
        max_bytes_ =
            static_cast<uint64_t>(get_int(config, "max_bytes", kDefaultMaxBytes, 1, INT64_MAX));
        max_redirects_ =
            static_cast<int>(get_int(config, "max_redirects", kDefaultMaxRedirects, 0, 20));
        timeout_ = milliseconds(get_int(config, "timeout_ms", kDefaultTimeoutMs, 1, 3'600'000));
        max_duration_ = milliseconds(
            get_int(config, "max_duration_ms", kDefaultMaxDurationMs, 1, 7 * 24 * 3'600'000LL));

        std::string ca_file;
        if (const json::Value* ca = config.find("ca_file"); ca != nullptr && !ca->is_null()) {
            if (!ca->is_string() || ca->as_string().empty())
                throw std::runtime_error("config: 'ca_file' is a path to a PEM file");
            ca_file = ca->as_string();
            if (!fs::is_regular_file(ca_file, ec))
                throw std::runtime_error("config: 'ca_file' " + ca_file + " is not a file");
        }
        Poco::Net::Context::Params params;
        params.caLocation = ca_file;  // in addition to the system's CAs
        params.loadDefaultCAs = true;
        // VERIFY_STRICT: the chain must lead to a trusted CA (no
        // invalid-certificate handler is installed, so a failure is never
        // waved through), and the host name is checked even for localhost,
        // which Poco skips under VERIFY_RELAXED.
        params.verificationMode = Poco::Net::Context::VERIFY_STRICT;
        params.verificationDepth = 9;
        try {
            context_ = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
            context_->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
            context_->enableExtendedCertificateVerification(true);
        } catch (const Poco::Exception& e) {
            throw std::runtime_error("config: cannot set up TLS" +
                                     (ca_file.empty() ? std::string() : " with " + ca_file) + ": " +
                                     e.displayText());
        }
        remove_stale_parts();
        host_.info("downloading exports to " + dir_.string() + " from " +
                   std::to_string(allowed_hosts_.size()) + " allowed host pattern(s)");
    }

    clayhook::Result handle(const clayhook::Event& event) {
        bool skipped = false;
        clayhook::Result r = attempt(event, skipped);
        const char* result = r.status() != CLAYHOOK_DONE ? "failed" : skipped ? "skipped" : "ok";
        host_.counter_add("downloads_total", 1, std::string("result=") + result);
        return r;
    }

  private:
    // Temporary files of attempts that cannot still be running (a crash, a
    // call abandoned at shutdown): nothing wrote to them for longer than any
    // attempt may last.
    void remove_stale_parts() {
        const auto cutoff =
            fs::file_time_type::clock::now() - max_duration_ - std::chrono::minutes(1);
        int removed = 0;
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(dir_, ec)) {
            std::string file = entry.path().filename().string();
            if (file.empty() || file.front() != '.' || file.find(".part-") == std::string::npos)
                continue;
            std::error_code fe;
            if (!entry.is_regular_file(fe) || entry.last_write_time(fe) > cutoff || fe) continue;
            if (fs::remove(entry.path(), fe)) ++removed;
        }
        if (removed > 0)
            host_.info("removed " + std::to_string(removed) + " stale temporary file(s) from " +
                       dir_.string());
    }

    static bool get_bool(const json::Value& config, const char* key, bool fallback) {
        const json::Value* v = config.find(key);
        if (v == nullptr || v->is_null()) return fallback;
        if (!v->is_bool())
            throw std::runtime_error(std::string("config: '") + key + "' is true or false");
        return v->as_bool();
    }
    static int64_t get_int(const json::Value& config, const char* key, int64_t fallback,
                           int64_t min, int64_t max) {
        const json::Value* v = config.find(key);
        if (v == nullptr || v->is_null()) return fallback;
        if (!v->is_integer() || v->as_int64() < min || v->as_int64() > max)
            throw std::runtime_error(std::string("config: '") + key + "' must be an integer from " +
                                     std::to_string(min) + " to " + std::to_string(max));
        return v->as_int64();
    }

    static std::string normalise_allowed_host(const std::string& entry) {
        std::string h = lower(trim(entry));
        if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
        if (auto v6 = canonical_ipv6(h)) return *v6;
        if (!h.empty() && h.back() == '.') h.pop_back();
        bool suffix = !h.empty() && h.front() == '.';
        if (!valid_host_name(suffix ? h.substr(1) : h))
            throw std::runtime_error("config: 'allowed_hosts': '" + entry +
                                     "' is not a host name (\"exports.example.com\") or a "
                                     "suffix (\".example.com\")");
        return h;
    }

    bool host_allowed(const std::string& host) const {
        for (const auto& a : allowed_hosts_) {
            if (a.front() == '.') {
                if (host.size() > a.size() &&
                    host.compare(host.size() - a.size(), a.size(), a) == 0)
                    return true;
            } else if (host == a) {
                return true;
            }
        }
        return false;
    }

    // Why an address may not be used, or nullopt when it may.
    std::optional<std::string> address_refusal(const Ip& ip) const {
        auto why = special_range(ip);
        if (!why || allow_private_) return std::nullopt;
        for (const auto& c : allowed_cidrs_)
            if (c.contains(ip)) return std::nullopt;
        return why;
    }

    // The checks a URL passes before anything is resolved.
    void check_url(const Url& url, const std::string& what) const {
        if (url.scheme == "http" && !allow_http_)
            refuse(what + " " + url.display() +
                   " uses http://, which is refused (only https:// unless allow_http is true)");
        if (!host_allowed(url.host))
            refuse(what + " " + url.display() + ": the host '" + url.host +
                   "' is not in allowed_hosts");
    }

    // Resolves, checks every address, connects to the first allowed one that
    // answers, and for https does the TLS handshake, verifying the
    // certificate against the host name.
    Poco::Net::StreamSocket connect(const Url& url, const Budget& budget) const {
        std::vector<Resolved> usable;
        std::string refused;
        for (const auto& r : resolve(url.host, url.port)) {
            if (auto why = address_refusal(r.ip)) {
                refused += (refused.empty() ? "" : ", ") + r.ip.text() + " (" + *why + ")";
            } else {
                usable.push_back(r);
            }
        }
        if (usable.empty())
            refuse("the host '" + url.host + "' resolves to refused address(es): " + refused +
                   "; private, loopback and link-local addresses need allow_private_addresses or "
                   "allowed_cidrs");
        std::string errors;
        for (const auto& r : usable) {
            try {
                Poco::Net::StreamSocket socket;
                socket.connect(r.address, budget.next());
                socket.setReceiveTimeout(budget.next());
                socket.setSendTimeout(budget.next());
                socket.setNoDelay(true);
                if (url.scheme == "http") return socket;
                // SNI and the certificate check use the URL's host name,
                // while the TCP connection is the one just made to the
                // checked address: no second lookup.
                return Poco::Net::SecureStreamSocket::attach(socket, url.host, context_);
            } catch (const Poco::Net::SSLException&) {
                throw;  // a TLS failure is about the server, not the address
            } catch (const Poco::TimeoutException&) {
                errors += (errors.empty() ? "" : "; ") + r.ip.text() + ": timed out";
            } catch (const Poco::Exception& e) {
                errors += (errors.empty() ? "" : "; ") + r.ip.text() + ": " + e.displayText();
            }
        }
        try_later("cannot connect to " + url.authority() + " (" + errors + ")");
    }

    clayhook::Result attempt(const clayhook::Event& event, bool& skipped) {
        Job job;
        try {
            job = parse_event(event.body);
        } catch (const Outcome& o) {
            host_.warn("event " + std::string(event.id) + " refused: " + o.what());
            return clayhook::Result::fail(o.what());
        }
        const fs::path final_path = dir_ / job.file_name;
        if ((skipped = already_there(final_path))) return clayhook::Result::done();

        // Two calls for the same export (a duplicate, a replay) would fetch
        // it twice; the second waits for the first.
        {
            std::lock_guard lock(mu_);
            if (!in_flight_.insert(job.file_name).second)
                return clayhook::Result::retry(
                    job.file_name + " is being downloaded by another call", kBusyRetry);
        }
        struct Release {
            ExportDownloader* self;
            const std::string& name;
            ~Release() {
                std::lock_guard lock(self->mu_);
                self->in_flight_.erase(name);
            }
        } release{this, job.file_name};
        if ((skipped = already_there(final_path))) return clayhook::Result::done();

        std::string shown = redact(job.url);
        try {
            Transfer t = download(job, final_path, shown);
            host_.info("downloaded " + shown + " to " + final_path.string() + ": " +
                       std::to_string(t.bytes) + " bytes" + (t.gunzipped ? " (gunzipped)" : "") +
                       (job.format == "csv" ? ", " + std::to_string(t.rows) + " data rows" : "") +
                       ", sha256 " + t.sha256);
            return clayhook::Result::done();
        } catch (const Outcome& o) {
            host_.warn("download of " + shown + (o.final ? " failed: " : " will be retried: ") +
                       o.what());
            return o.final ? clayhook::Result::fail(o.what())
                           : clayhook::Result::retry(o.what(), o.after);
        }
    }

    bool already_there(const fs::path& final_path) {
        std::error_code ec;
        if (!fs::exists(final_path, ec)) return false;
        host_.info(final_path.string() + " is already there: not fetched again");
        return true;
    }

    // Follows redirects, streams the body into a temporary file, checks it,
    // and renames it into place. Throws an Outcome when it does not succeed.
    Transfer download(const Job& job, const fs::path& final_path, std::string& shown) {
        Url url = parse_url(job.url, "export_url");
        shown = url.display();
        Budget budget(timeout_, max_duration_);
        TempFile tmp(dir_, job.file_name);
        Transfer t;
        uint64_t wire = 0;
        try {
            for (int hop = 0;; ++hop) {
                check_url(url, hop == 0 ? "export_url" : "the redirect to");
                std::optional<Url> next = fetch(url, budget, tmp, t, wire);
                if (!next) break;
                if (hop >= max_redirects_)
                    refuse("more than max_redirects (" + std::to_string(max_redirects_) +
                           ") redirects, the last to " + next->display());
                host_.info("following a redirect from " + url.display() + " to " + next->display());
                url = *next;
                shown = url.display();
            }
        } catch (const Outcome&) {
            count_bytes(wire);
            throw;
        } catch (const Poco::TimeoutException&) {
            count_bytes(wire);
            try_later(budget.expired()
                          ? budget.over()
                          : "timed out: no answer or data for timeout_ms (" +
                                std::to_string(budget.idle().count()) + " ms) from " + shown);
        } catch (const Poco::Net::CertificateValidationException& e) {
            count_bytes(wire);
            refuse("the TLS certificate of " + url.authority() + " was refused: " + e.message());
        } catch (const Poco::Net::SSLException& e) {
            count_bytes(wire);
            std::string m = e.displayText();
            if (m.find("certificate verify failed") != std::string::npos)
                refuse("the TLS certificate of " + url.authority() + " was refused: " + m);
            try_later("TLS with " + url.authority() + " failed: " + m);
        } catch (const Poco::Net::NoMessageException&) {
            count_bytes(wire);
            try_later(url.authority() + " closed the connection without answering");
        } catch (const Poco::Exception& e) {
            count_bytes(wire);
            try_later("fetching " + shown + " failed: " + e.displayText());
        } catch (const std::exception& e) {
            count_bytes(wire);
            try_later("fetching " + shown + " failed: " + e.what());
        }
        count_bytes(wire);
        tmp.finish();

        if (job.format == "csv") {
            std::string why;
            if (t.open_quote)
                why = "the CSV ends inside a quoted field";
            else if (static_cast<int64_t>(t.rows) != *job.row_count)
                why = "row count mismatch: the event says " + std::to_string(*job.row_count) +
                      " data rows, the file has " + std::to_string(t.rows) + " (header excluded)";
            if (!why.empty()) {
                fs::path aside = final_path;
                aside += kRejectedSuffix;
                tmp.rename_to(aside);
                fsync_dir(dir_);
                refuse(why + "; the file is kept as " + aside.string() + " for a person to check");
            }
        }

        fs::path sum_path = final_path;
        sum_path += kSumSuffix;
        {
            TempFile sum(dir_, job.file_name + std::string(kSumSuffix));
            std::string line = t.sha256 + "  " + job.file_name + "\n";
            sum.write(line.data(), line.size());
            sum.finish();
            sum.rename_to(sum_path);
        }
        tmp.rename_to(final_path);
        fsync_dir(dir_);
        return t;
    }

    void count_bytes(uint64_t wire) {
        if (wire > 0) host_.counter_add("bytes_total", static_cast<double>(wire));
    }

    // One request. Returns the next URL for a redirect, nullopt when the body
    // was written to `tmp`.
    std::optional<Url> fetch(const Url& url, const Budget& budget, TempFile& tmp, Transfer& t,
                             uint64_t& wire) const {
        Poco::Net::StreamSocket socket = connect(url, budget);
        std::string request = "GET " + url.target +
                              " HTTP/1.1\r\n"
                              "Host: " +
                              url.authority() +
                              "\r\n"
                              "User-Agent: clayhook-export-downloader/1.0\r\n"
                              "Accept: */*\r\n"
                              "Accept-Encoding: gzip\r\n"
                              "Connection: close\r\n\r\n";
        for (size_t sent = 0; sent < request.size();) {
            socket.setSendTimeout(budget.next());
            int n =
                socket.sendBytes(request.data() + sent, static_cast<int>(request.size() - sent));
            if (n <= 0) try_later("sending the request to " + url.authority() + " failed");
            sent += static_cast<size_t>(n);
        }

        SocketBuf conn(socket, budget);
        std::istream in(&conn);
        in.exceptions(std::ios::badbit);
        Poco::Net::HTTPResponse resp;
        do {
            resp.clear();
            resp.read(in);
        } while (resp.getStatus() >= 100 && resp.getStatus() < 200);
        const int status = static_cast<int>(resp.getStatus());
        const std::string where = " from " + url.display();

        if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
            std::string location = resp.get("Location", "");
            if (trim(location).empty())
                refuse("HTTP " + std::to_string(status) + " without a Location" + where);
            Url next = parse_url(resolve_location(url, location), "the redirect");
            if (next.scheme == "http" && url.scheme == "https" && !allow_http_)
                refuse("the redirect from " + url.display() + " to " + next.display() +
                       " downgrades to http://, which is refused");
            return next;
        }
        if (status == 429 || status == 503 || status == 408 || status >= 500) {
            std::optional<milliseconds> after;
            if (status == 429 || status == 503)
                after = parse_retry_after(resp.get("Retry-After", ""));
            try_later("HTTP " + std::to_string(status) + " " + printable(resp.getReason()) + where +
                          (after ? " (Retry-After: " + std::to_string(after->count() / 1000) + " s)"
                                 : ""),
                      after.value_or(milliseconds(0)));
        }
        if (status >= 400)
            refuse("HTTP " + std::to_string(status) + " " + printable(resp.getReason()) + where);
        if (status != 200)
            refuse("unexpected HTTP " + std::to_string(status) + " " + printable(resp.getReason()) +
                   where);

        // Framing
        BodyBuf::Framing framing = BodyBuf::Framing::close;
        uint64_t length = 0;
        if (resp.has("Transfer-Encoding")) {
            if (lower(trim(resp.get("Transfer-Encoding"))) != "chunked")
                refuse("unsupported Transfer-Encoding '" +
                       printable(resp.get("Transfer-Encoding")) + "'" + where);
            framing = BodyBuf::Framing::chunked;
        } else if (resp.has("Content-Length")) {
            std::string cl = trim(resp.get("Content-Length"));
            for (const auto& [k, v] : resp)
                if (Poco::icompare(k, "Content-Length") == 0 && trim(v) != cl)
                    try_later("conflicting Content-Length headers" + where);
            if (!all_digits(cl) || cl.size() > 19) try_later("a malformed Content-Length" + where);
            length = std::stoull(cl);
            framing = BodyBuf::Framing::length;
            if (length > max_bytes_)
                refuse("the export is too large: Content-Length " + std::to_string(length) +
                       " exceeds max_bytes (" + std::to_string(max_bytes_) + ")" + where);
        }

        // Content coding: gzip as announced, or as recognised by its magic
        // bytes (a .gz file served as is).
        std::string coding = lower(trim(resp.get("Content-Encoding", "")));
        BodyBuf body(conn, framing, length, max_bytes_);
        std::istream body_in(&body);
        body_in.exceptions(std::ios::badbit);
        Sha256 sha;
        CsvCounter csv;
        std::vector<char> buf(kBufferSize);
        std::unique_ptr<Poco::InflatingInputStream> inflater;
        std::optional<Poco::InflatingStreamBuf::StreamType> inflate;
        try {
            if (coding == "gzip" || coding == "x-gzip") {
                inflate = Poco::InflatingStreamBuf::STREAM_GZIP;
            } else if (coding == "deflate") {
                inflate = Poco::InflatingStreamBuf::STREAM_ZLIB;
            } else if (coding.empty() || coding == "identity") {
                if (body.peek(2) == std::string_view("\x1f\x8b", 2))
                    inflate = Poco::InflatingStreamBuf::STREAM_GZIP;
            } else {
                refuse("unsupported Content-Encoding '" + printable(coding) + "'" + where);
            }

            std::istream* src = &body_in;
            if (inflate) {
                inflater = std::make_unique<Poco::InflatingInputStream>(body_in, *inflate);
                inflater->exceptions(std::ios::badbit);
                src = inflater.get();
                t.gunzipped = true;
            }
            for (;;) {
                src->read(buf.data(), static_cast<std::streamsize>(buf.size()));
                auto n = static_cast<size_t>(src->gcount());
                if (n > 0) {
                    t.bytes += n;
                    if (t.bytes > max_bytes_)
                        refuse("the export is too large: more than max_bytes (" +
                               std::to_string(max_bytes_) + ") bytes" +
                               (inflate ? " after decompression" : "") + where);
                    sha.update(buf.data(), n);
                    csv.feed(buf.data(), n);
                    tmp.write(buf.data(), n);
                }
                if (!*src) break;
            }
            // After the end of a compressed stream, read what is left of the
            // body, so that a body cut short is still noticed.
            if (inflater && body_in.good()) {
                while (body_in.read(buf.data(), static_cast<std::streamsize>(buf.size())) ||
                       body_in.gcount() > 0) {
                }
            }
        } catch (const Poco::IOException& e) {
            wire = body.wire_bytes();
            if (inflate && dynamic_cast<const Poco::Net::NetException*>(&e) == nullptr)
                try_later("the compressed body could not be decompressed (" + e.displayText() +
                          ")" + where);
            throw;
        } catch (...) {
            wire = body.wire_bytes();
            throw;
        }
        wire = body.wire_bytes();
        t.wire_bytes = wire;
        t.rows = csv.data_rows();
        t.open_quote = csv.open_quote();
        t.sha256 = sha.hex();
        return std::nullopt;
    }

    clayhook::Host& host_;
    fs::path dir_;
    std::vector<std::string> allowed_hosts_;
    std::vector<Cidr> allowed_cidrs_;
    bool allow_private_ = false;
    bool allow_http_ = false;
    uint64_t max_bytes_ = 0;
    int max_redirects_ = 0;
    milliseconds timeout_{0};
    milliseconds max_duration_{0};
    Poco::Net::Context::Ptr context_;

    std::mutex mu_;
    std::set<std::string> in_flight_;
};

}  // namespace

CLAYHOOK_PLUGIN(ExportDownloader)

// URLs for the export-downloader. Parsed by hand so that the request target
// is sent exactly as given (a signed URL must not be re-encoded), and so that
// nothing but scheme, host and path ever reaches a log line or a reason (the
// query may carry a token).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace clayhook::exportdl {

// Everything before the query and the fragment: what may be shown.
std::string redact(std::string_view url);

struct Url {
    std::string scheme;  // "http" or "https"
    std::string host;    // lower case; an IPv6 literal without brackets
    uint16_t port = 0;
    bool explicit_port = false;
    bool ipv6 = false;
    std::string target;  // path and query, as given

    uint16_t default_port() const { return scheme == "https" ? 443 : 80; }
    // host or host:port ([v6] or [v6]:port), the port only when not the default.
    std::string authority() const;
    std::string origin() const { return scheme + "://" + authority(); }
    std::string path() const { return target.substr(0, target.find('?')); }
    std::string display() const { return origin() + path(); }
    std::string full() const { return origin() + target; }
};

// A DNS name as the plugin accepts it (already lower case, without a
// trailing dot): letters, digits, '-', '_' and '.', labels of 1 to 63
// characters, at most 253 in all.
bool valid_host_name(std::string_view h);

// Whether the host's last label is a number (digits, or 0x and hex digits):
// the resolver reads such a host as an IPv4 address, in any of the forms
// inet_aton accepts (0177.0.0.1, 0x7f.1, 127.1, 2130706433).
bool ends_in_number(std::string_view host);

// Four decimal numbers 0-255 without leading zeros (a.b.c.d), the only IPv4
// form the plugin accepts in a URL or in allowed_hosts.
bool dotted_quad(std::string_view host);

// Canonical text of an IPv6 literal (so "::0001" and "::1" compare equal);
// nullopt when it is not one (zone ids like fe80::1%eth0 are not).
std::optional<std::string> canonical_ipv6(const std::string& s);

// Throws a refusal naming `what` ("export_url", "the redirect") when `s` is
// not an absolute http(s) URL this plugin can fetch.
Url parse_url(std::string_view s, const std::string& what);

// Where a redirect's Location points, as an absolute URL (not yet checked:
// parse_url it). Throws a refusal when a relative one cannot be resolved.
std::string resolve_location(const Url& base, std::string location);

}  // namespace clayhook::exportdl

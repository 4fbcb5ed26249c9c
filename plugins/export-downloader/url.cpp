#include "url.hpp"

#include "outcome.hpp"
#include "text.hpp"

#include <Poco/Exception.h>
#include <Poco/URI.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <string>

namespace clayhook::exportdl {

std::string redact(std::string_view url) {
    return std::string(url.substr(0, url.find_first_of("?#")));
}

std::string Url::authority() const {
    std::string h = ipv6 ? "[" + host + "]" : host;
    if (port != default_port()) h += ":" + std::to_string(port);
    return h;
}

bool valid_host_name(std::string_view h) {
    if (h.empty() || h.size() > 253 || h.front() == '.' || h.back() == '.') return false;
    if (h.find("..") != std::string_view::npos) return false;
    size_t label = 0;
    for (char c : h) {
        label = c == '.' ? 0 : label + 1;
        if (label > 63) return false;
    }
    return std::all_of(h.begin(), h.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
    });
}

bool ends_in_number(std::string_view host) {
    std::string_view last = host.substr(host.rfind('.') + 1);  // npos + 1 == 0
    if (all_digits(last)) return true;
    if (last.size() < 2 || last[0] != '0' || (last[1] != 'x' && last[1] != 'X')) return false;
    return std::all_of(last.begin() + 2, last.end(),
                       [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

bool dotted_quad(std::string_view host) {
    in_addr a{};
    return inet_pton(AF_INET, std::string(host).c_str(), &a) == 1;
}

std::optional<std::string> canonical_ipv6(const std::string& s) {
    in6_addr a{};
    if (inet_pton(AF_INET6, s.c_str(), &a) != 1) return std::nullopt;
    char buf[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, &a, buf, sizeof buf) == nullptr) return std::nullopt;
    return std::string(buf);
}

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
        // The resolver would read 0177.0.0.1, 0x7f.1, 127.1 or 2130706433 as
        // 127.0.0.1: only a.b.c.d is accepted, so that the host the
        // allow-list sees is the address that gets connected to.
        if (ends_in_number(url.host) && !dotted_quad(url.host))
            return bad("the host '" + url.host +
                       "' is not a valid IPv4 address (only the form a.b.c.d is accepted)");
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

}  // namespace clayhook::exportdl

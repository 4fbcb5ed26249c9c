// The export-downloader's URL unit (plugins/export-downloader/url.hpp):
// parsing an export URL or a redirect, the canonical host the allow-list
// sees, and a Location resolved against the URL that answered it.
#include "export-downloader/url.hpp"
#include "export-downloader/outcome.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

using namespace clayhook::exportdl;

namespace {

// The reason parse_url refuses `s` with (a fail, never a retry), or "" when
// it takes it.
std::string refusal(std::string_view s) {
    try {
        parse_url(s, "export_url");
        return "";
    } catch (const Outcome& o) {
        CHECK(o.final);
        return o.what();
    }
}

// The absolute URL a Location on `base` leads to, as parse_url reads it.
std::string follow(const std::string& base, const std::string& location) {
    return parse_url(resolve_location(parse_url(base, "export_url"), location), "the redirect")
        .full();
}

}  // namespace

TEST_CASE("url: scheme, host, port, target and what may be shown", "[export-downloader][url]") {
    Url u = parse_url("https://Exports.Example.COM./t_1/exp_9.csv?sig=abc&x=1#part", "export_url");
    CHECK(u.scheme == "https");
    CHECK(u.host == "exports.example.com");  // lower case, trailing dot dropped
    CHECK(u.port == 443);
    CHECK_FALSE(u.explicit_port);
    CHECK_FALSE(u.ipv6);
    CHECK(u.target == "/t_1/exp_9.csv?sig=abc&x=1");  // the fragment is not sent
    CHECK(u.path() == "/t_1/exp_9.csv");
    CHECK(u.authority() == "exports.example.com");
    CHECK(u.display() == "https://exports.example.com/t_1/exp_9.csv");
    CHECK(u.full() == "https://exports.example.com/t_1/exp_9.csv?sig=abc&x=1");

    Url h = parse_url("HTTP://a.example", "export_url");
    CHECK(h.scheme == "http");
    CHECK(h.port == 80);
    CHECK(h.target == "/");
    CHECK(parse_url("https://a.example?x=1", "export_url").target == "/?x=1");
    CHECK(parse_url("https://a.example#frag", "export_url").target == "/");
    CHECK(parse_url("https://a.example/#frag?x", "export_url").target == "/");
}

TEST_CASE("url: only absolute http and https URLs are taken", "[export-downloader][url]") {
    CHECK(refusal("https://a.example/x") == "");
    CHECK(refusal("http://a.example/x") == "");
    CHECK_THAT(refusal("ftp://a.example/x"),
               Catch::Contains("the scheme 'ftp' is not http or https"));
    CHECK_THAT(refusal("file:///etc/passwd"), Catch::Contains("the scheme 'file'"));
    CHECK_THAT(refusal("gopher://a.example:70/_x"), Catch::Contains("the scheme 'gopher'"));
    CHECK_THAT(refusal("httpss://a.example/"), Catch::Contains("the scheme 'httpss'"));
    for (const char* s : {"javascript:alert(1)", "//a.example/x", "://a.example/x", "a.example/x",
                          "/x.csv", "https:/a.example/x", "", "https:a.example"}) {
        INFO(s);
        CHECK_THAT(refusal(s), Catch::Contains("not an absolute URL"));
    }
    // The reason names what was parsed and the URL without its query.
    CHECK_THAT(refusal("ftp://a.example/x?token=SECRET"),
               Catch::StartsWith("export_url 'ftp://a.example/x' is not usable: "));
    try {
        parse_url("ftp://a.example/x", "the redirect");
        FAIL("taken");
    } catch (const Outcome& o) {
        CHECK_THAT(o.what(), Catch::StartsWith("the redirect 'ftp://a.example/x'"));
    }
}

TEST_CASE("url: user names and passwords are refused, and the host is the authority's",
          "[export-downloader][url]") {
    for (const char* s : {"https://u:p@a.example/", "https://u@a.example/", "https://@a.example/",
                          "https://a.example@evil.example/", "https://a.example:443@evil.example/",
                          "https://a.example\\@evil.example/", "https://u:p@[::1]/"}) {
        INFO(s);
        CHECK_THAT(refusal(s),
                   Catch::Contains("user names and passwords in URLs are not supported"));
    }
    // An '@' after the authority is not userinfo: the host is the one before it.
    CHECK(parse_url("https://evil.example#@a.example/", "export_url").host == "evil.example");
    CHECK(parse_url("https://evil.example?@a.example/", "export_url").host == "evil.example");
    Url at = parse_url("https://evil.example/@a.example/", "export_url");
    CHECK(at.host == "evil.example");
    CHECK(at.target == "/@a.example/");
}

TEST_CASE("url: ports", "[export-downloader][url]") {
    Url u = parse_url("https://a.example:8443/x", "export_url");
    CHECK(u.port == 8443);
    CHECK(u.explicit_port);
    CHECK(u.authority() == "a.example:8443");
    CHECK(u.display() == "https://a.example:8443/x");

    Url d = parse_url("https://a.example:443/", "export_url");
    CHECK(d.port == 443);
    CHECK(d.explicit_port);
    CHECK(d.authority() == "a.example");  // the default port is not written
    CHECK(parse_url("http://a.example:443/", "export_url").authority() == "a.example:443");
    CHECK(parse_url("https://a.example:80/", "export_url").authority() == "a.example:80");
    CHECK(parse_url("https://a.example:00080/", "export_url").port == 80);
    CHECK(parse_url("https://a.example:65535/", "export_url").port == 65535);
    CHECK(parse_url("https://a.example:1/", "export_url").port == 1);

    Url empty = parse_url("https://a.example:/x", "export_url");  // an empty port: the default
    CHECK(empty.port == 443);
    CHECK_FALSE(empty.explicit_port);

    CHECK_THAT(refusal("https://a.example:0/"), Catch::Contains("the port is out of range"));
    CHECK_THAT(refusal("https://a.example:65536/"), Catch::Contains("the port is out of range"));
    CHECK_THAT(refusal("https://a.example:99999/"), Catch::Contains("the port is out of range"));
    for (const char* s : {"https://a.example:123456/", "https://a.example:+80/",
                          "https://a.example:-1/", "https://a.example:8o/",
                          "https://a.example:0x50/", "https://a.example:18446744073709551617/"}) {
        INFO(s);
        CHECK_THAT(refusal(s), Catch::Contains("the port is not a number"));
    }
    // Only the last ':' starts the port; what is before it must be a host.
    CHECK_THAT(refusal("https://a.example:80:80/"), Catch::Contains("the host 'a.example:80'"));
}

TEST_CASE("url: IPv6 literals are canonical, zone ids are refused", "[export-downloader][url]") {
    Url u = parse_url("https://[::0001]:8443/x", "export_url");
    CHECK(u.ipv6);
    CHECK(u.host == "::1");
    CHECK(u.port == 8443);
    CHECK(u.authority() == "[::1]:8443");
    CHECK(u.display() == "https://[::1]:8443/x");
    CHECK(parse_url("https://[2001:DB8:0:0:0:0:0:A]/", "export_url").host == "2001:db8::a");
    CHECK(parse_url("https://[::ffff:127.0.0.1]/", "export_url").host == "::ffff:127.0.0.1");
    CHECK(parse_url("https://[0:0:0:0:0:ffff:7f00:1]/", "export_url").host == "::ffff:127.0.0.1");
    CHECK(parse_url("https://[64:ff9b::192.0.2.1]/", "export_url").host == "64:ff9b::c000:201");
    Url no_port = parse_url("https://[::1]:/", "export_url");
    CHECK(no_port.port == 443);
    CHECK(no_port.authority() == "[::1]");

    for (const char* s : {"https://[fe80::1%25eth0]/", "https://[fe80::1%eth0]/",
                          "https://[fe80::1%1]/", "https://[1.2.3.4]/", "https://[::1::2]/",
                          "https://[]/", "https://[example.com]/", "https://[12345::]/"}) {
        INFO(s);
        CHECK_THAT(refusal(s), Catch::Contains("is not an IPv6 address"));
    }
    CHECK_THAT(refusal("https://[::1/x"), Catch::Contains("an unclosed '['"));
    CHECK_THAT(refusal("https://[::1]x/"), Catch::Contains("unexpected text after the IPv6"));
    CHECK_THAT(refusal("https://[::1]]/"), Catch::Contains("unexpected text after the IPv6"));
    // Without brackets, the last ':' starts a port and the rest is no host.
    CHECK_THAT(refusal("https://::1/"), Catch::Contains("is not valid"));
    CHECK_THAT(refusal("https://fe80::1/"), Catch::Contains("is not valid"));

    CHECK(canonical_ipv6("0:0:0:0:0:0:0:1") == "::1");
    CHECK(canonical_ipv6("FE80::0:1") == "fe80::1");
    CHECK(canonical_ipv6("::") == "::");
    CHECK_FALSE(canonical_ipv6("fe80::1%eth0"));
    CHECK_FALSE(canonical_ipv6("[::1]"));
    CHECK_FALSE(canonical_ipv6("127.0.0.1"));
    CHECK_FALSE(canonical_ipv6(""));
}

TEST_CASE("url: odd hosts: IDN, percent-encoding, bytes outside ASCII",
          "[export-downloader][url]") {
    CHECK_THAT(refusal("https://bücher.example/"), Catch::Contains("a non-ASCII byte"));
    CHECK(parse_url("https://xn--bcher-kva.example/", "export_url").host ==
          "xn--bcher-kva.example");  // IDN only as punycode
    CHECK(parse_url("https://under_score.example/", "export_url").host == "under_score.example");
    CHECK(parse_url("https://1.2.3.4.example/", "export_url").host == "1.2.3.4.example");
    for (const char* s : {"https://a b.example/", "https://a.example/x y", "https://a.example/\t",
                          "https://a.example/\r\nHost: evil.example", "https://a.example/\x7f",
                          "https://a.example/\x01"}) {
        INFO(s);
        CHECK_THAT(refusal(s), Catch::Contains("a space, a control character"));
    }
    // No percent-decoding in the host: it is not a host name.
    for (const char* s : {"https://ex%61mple.com/", "https://a.example%2f@evil/", "https:///x",
                          "https://a..example/", "https://.a.example/", "https://a.example../",
                          "https://a.example\\x/", "https://a.exam!ple/", "https://a.example;x/",
                          "https://*.example/", "https://a.example,b.example/"}) {
        INFO(s);
        std::string why = refusal(s);
        CHECK_THAT(why, Catch::Contains("is not valid") || Catch::Contains("user names"));
    }
    CHECK(valid_host_name("a.example"));
    CHECK(valid_host_name("localhost"));
    CHECK_FALSE(valid_host_name("A.example"));  // parse_url lower-cases first
    CHECK_FALSE(valid_host_name("a.example."));
    CHECK_FALSE(valid_host_name(""));
}

TEST_CASE("url: IPv4 addresses only as a.b.c.d", "[export-downloader][url]") {
    CHECK(parse_url("https://127.0.0.1/", "export_url").host == "127.0.0.1");
    CHECK(parse_url("https://203.0.113.7:8443/", "export_url").host == "203.0.113.7");
    CHECK(parse_url("https://0.0.0.0/", "export_url").host == "0.0.0.0");
    CHECK(parse_url("https://255.255.255.255./", "export_url").host == "255.255.255.255");
    // The resolver reads all of these as an address (inet_aton: 127.0.0.1,
    // or 1.2.3.4 for the last two); they are refused, not resolved.
    for (const char* host :
         {"0177.0.0.1",      "0x7f.1",      "0x7f.0.0.1", "0X7F000001",   "0x7f000001",
          "127.1",           "127.0.1",     "2130706433", "017700000001", "127.0.0.01",
          "127.000.000.001", "00127.0.0.1", "256.0.0.1",  "1.2.3.256",    "1.2.3.4.5",
          "1.2.3.",          "4294967296",  "a.0x1f",     "example.123",  "0x",
          "01.02.03.04",     "1.2.3.04"}) {
        INFO(host);
        CHECK_THAT(refusal(std::string("https://") + host + "/x"),
                   Catch::Contains("is not a valid IPv4 address (only the form a.b.c.d"));
    }
    CHECK(ends_in_number("127.1"));
    CHECK(ends_in_number("a.0x7f"));
    CHECK(ends_in_number("0X1f"));
    CHECK(ends_in_number("2130706433"));
    CHECK_FALSE(ends_in_number("1.2.3.4.example"));
    CHECK_FALSE(ends_in_number("a.0x7g"));
    CHECK_FALSE(ends_in_number("a.x7f"));
    CHECK_FALSE(ends_in_number("localhost"));
    CHECK(dotted_quad("10.0.0.1"));
    CHECK_FALSE(dotted_quad("10.0.0.01"));
    CHECK_FALSE(dotted_quad("10.1"));
}

TEST_CASE("url: the target is sent as given: no decoding, no re-encoding",
          "[export-downloader][url]") {
    const std::string target = "/a%20b/%2e%2e/%2F/c+d?x=%2F&y=a+b&sig=AbC%3D%3D&empty=&=&&";
    Url u = parse_url("https://a.example" + target, "export_url");
    CHECK(u.target == target);
    CHECK(u.path() == "/a%20b/%2e%2e/%2F/c+d");
    // Dot segments are the server's business too.
    CHECK(parse_url("https://a.example/../etc/./x", "export_url").target == "/../etc/./x");
    CHECK(parse_url("https://a.example//x", "export_url").target == "//x");
    CHECK(parse_url("https://a.example?a=b?c=d/e", "export_url").target == "/?a=b?c=d/e");
}

TEST_CASE("url: overlong input", "[export-downloader][url]") {
    const std::string label63(63, 'a');
    std::string host253 = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
    REQUIRE(host253.size() == 253);
    CHECK(parse_url("https://" + host253 + "/", "export_url").host == host253);
    CHECK_THAT(refusal("https://" + host253 + "c/"), Catch::Contains("is not valid"));
    CHECK(parse_url("https://" + label63 + ".example/", "export_url").host == label63 + ".example");
    CHECK_THAT(refusal("https://" + label63 + "a.example/"), Catch::Contains("is not valid"));
    CHECK_THAT(refusal("https://a.example:" + std::string(100'000, '8') + "/"),
               Catch::Contains("the port is not a number"));

    // A long signed URL is kept whole.
    const std::string path = "/" + std::string(100'000, 'p');
    const std::string query = "?sig=" + std::string(50'000, 's');
    Url u = parse_url("https://a.example" + path + query, "export_url");
    CHECK(u.target == path + query);
    // And a refusal does not echo the query, however long.
    std::string why = refusal("https://a..example" + path + query);
    CHECK(why.find("sig=") == std::string::npos);
    CHECK_THAT(why, Catch::Contains("https://a..example/ppp"));
}

TEST_CASE("url: redact keeps scheme, host and path only", "[export-downloader][url]") {
    CHECK(redact("https://a.example/x.csv?sig=SECRET") == "https://a.example/x.csv");
    CHECK(redact("https://a.example/x.csv#SECRET") == "https://a.example/x.csv");
    CHECK(redact("https://a.example/x.csv#a?b") == "https://a.example/x.csv");
    CHECK(redact("https://a.example") == "https://a.example");
    CHECK(redact("") == "");
}

TEST_CASE("url: a Location resolved against the URL that answered", "[export-downloader][url]") {
    const std::string base = "https://a.example:8443/dir/file.csv?sig=1";
    // Absolute, any case, kept as given.
    CHECK(follow(base, "https://b.example/x?y=1") == "https://b.example/x?y=1");
    CHECK(follow(base, "HTTPS://B.example/x") == "https://b.example/x");
    CHECK(follow(base, "http://b.example:8080/x") == "http://b.example:8080/x");
    // Scheme-relative: the base's scheme.
    CHECK(follow(base, "//b.example/x?q") == "https://b.example/x?q");
    CHECK(follow("http://a.example/", "//b.example/x") == "http://b.example/x");
    // Absolute path and query: the base's origin.
    CHECK(follow(base, "/abs/x.csv?x=%2F") == "https://a.example:8443/abs/x.csv?x=%2F");
    CHECK(follow(base, "?y=2") == "https://a.example:8443/dir/file.csv?y=2");
    // Relative paths, dot segments removed.
    CHECK(follow(base, "other.csv") == "https://a.example:8443/dir/other.csv");
    CHECK(follow(base, "./same/x.csv") == "https://a.example:8443/dir/same/x.csv");
    CHECK(follow(base, "../up.csv") == "https://a.example:8443/up.csv");
    CHECK(follow(base, "../../../../x.csv") == "https://a.example:8443/x.csv");
    CHECK(follow(base, "sub/x.csv?q=1") == "https://a.example:8443/dir/sub/x.csv?q=1");
    CHECK(follow("https://[::1]:8443/d/f", "g.csv") == "https://[::1]:8443/d/g.csv");
    CHECK(follow("https://a.example", "x.csv") == "https://a.example/x.csv");
    // Spaces around it and the fragment go.
    CHECK(follow(base, "  /trimmed.csv \t") == "https://a.example:8443/trimmed.csv");
    CHECK(follow(base, "/x.csv#frag") == "https://a.example:8443/x.csv");
    CHECK(follow(base, "https://b.example/x#f?g") == "https://b.example/x");

    // What it leads to is checked like any URL.
    auto refused = [&](const std::string& location) {
        try {
            follow(base, location);
            return std::string();
        } catch (const Outcome& o) {
            CHECK(o.final);
            return std::string(o.what());
        }
    };
    CHECK_THAT(refused("ftp://b.example/x"), Catch::Contains("the scheme 'ftp'"));
    CHECK_THAT(refused("javascript:alert(1)"), Catch::Contains("not an absolute URL"));
    CHECK_THAT(refused("//u:p@b.example/x"), Catch::Contains("user names and passwords"));
    CHECK_THAT(refused("https://0x7f.1/x"), Catch::Contains("is not a valid IPv4 address"));
    CHECK_THAT(refused("/a b"), Catch::Contains("a space"));
    CHECK_THAT(refused("//[fe80::1%25eth0]/x"), Catch::Contains("is not an IPv6 address"));
}

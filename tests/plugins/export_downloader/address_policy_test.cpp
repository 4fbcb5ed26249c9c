// The export-downloader's address policy (plugins/export-downloader/
// address_policy.hpp): strict address parsing, ranges, every special-purpose
// range with its first, last and just-outside addresses, the IPv6 forms that
// carry an IPv4 address, the allow-lists, and resolution with the policy
// applied (numeric hosts and localhost only: no DNS beyond /etc/hosts).
#include "export-downloader/address_policy.hpp"
#include "export-downloader/outcome.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

using namespace clayhook::exportdl;

namespace {

Ip ip(const std::string& text) {
    auto a = parse_ip(text);
    INFO(text);
    REQUIRE(a);
    return *a;
}

// special_range's answer, "" for a public address.
std::string why(const std::string& text) {
    return special_range(ip(text)).value_or("");
}

Cidr cidr(const std::string& text) {
    auto c = parse_cidr(text);
    INFO(text);
    REQUIRE(c);
    return *c;
}

// One special range: its first and last addresses are refused with its
// reason; the addresses just below and just above it (nullptr when there is
// none) get `below_why` / `above_why` ("" for public).
struct RangeCase {
    const char* cidr;
    const char* what;
    const char* first;
    const char* last;
    const char* below;
    const char* below_why;
    const char* above;
    const char* above_why;
};

const std::string kIetf4 = "IETF protocol assignments 192.0.0.0/24";
const std::string kReserved4 = "reserved 240.0.0.0/4";

const RangeCase kV4Cases[] = {
    {"0.0.0.0/8", "this-network", "0.0.0.0", "0.255.255.255", nullptr, "", "1.0.0.0", ""},
    {"10.0.0.0/8", "private", "10.0.0.0", "10.255.255.255", "9.255.255.255", "", "11.0.0.0", ""},
    {"100.64.0.0/10", "shared (carrier-grade NAT)", "100.64.0.0", "100.127.255.255",
     "100.63.255.255", "", "100.128.0.0", ""},
    {"127.0.0.0/8", "loopback", "127.0.0.0", "127.255.255.255", "126.255.255.255", "", "128.0.0.0",
     ""},
    {"169.254.0.0/16", "link-local", "169.254.0.0", "169.254.255.255", "169.253.255.255", "",
     "169.255.0.0", ""},
    {"172.16.0.0/12", "private", "172.16.0.0", "172.31.255.255", "172.15.255.255", "", "172.32.0.0",
     ""},
    {"192.0.0.0/24", "IETF protocol assignments", "192.0.0.0", "192.0.0.255", "191.255.255.255", "",
     "192.0.1.0", ""},
    {"192.0.2.0/24", "documentation", "192.0.2.0", "192.0.2.255", "192.0.1.255", "", "192.0.3.0",
     ""},
    {"192.88.99.0/24", "6to4 relay anycast", "192.88.99.0", "192.88.99.255", "192.88.98.255", "",
     "192.88.100.0", ""},
    {"192.168.0.0/16", "private", "192.168.0.0", "192.168.255.255", "192.167.255.255", "",
     "192.169.0.0", ""},
    {"198.18.0.0/15", "benchmarking", "198.18.0.0", "198.19.255.255", "198.17.255.255", "",
     "198.20.0.0", ""},
    {"198.51.100.0/24", "documentation", "198.51.100.0", "198.51.100.255", "198.51.99.255", "",
     "198.51.101.0", ""},
    {"203.0.113.0/24", "documentation", "203.0.113.0", "203.0.113.255", "203.0.112.255", "",
     "203.0.114.0", ""},
    {"224.0.0.0/4", "multicast", "224.0.0.0", "239.255.255.255", "223.255.255.255", "", "240.0.0.0",
     "reserved 240.0.0.0/4"},
    {"255.255.255.255/32", "broadcast", "255.255.255.255", "255.255.255.255", "255.255.255.254",
     "reserved 240.0.0.0/4", nullptr, ""},
    // Its last address is broadcast's, named first (above).
    {"240.0.0.0/4", "reserved", "240.0.0.0", "255.255.255.254", "239.255.255.255",
     "multicast 224.0.0.0/4", nullptr, ""},
};

const RangeCase kV6Cases[] = {
    {"::/128", "unspecified", "::", "::", nullptr, "", "::1", "loopback ::1/128"},
    {"::1/128", "loopback", "::1", "::1", "::", "unspecified ::/128", "::2",
     "IPv4-compatible this-network 0.0.0.0/8"},
    {"::ffff:0:0:0/96", "IPv4-translated", "::ffff:0:0:0", "::ffff:0:ffff:ffff",
     "::fffe:ffff:ffff:ffff", "", "::ffff:1:0:0", ""},
    {"64:ff9b:1::/48", "local-use NAT64", "64:ff9b:1::", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
     "64:ff9b:0:ffff:ffff:ffff:ffff:ffff", "", "64:ff9b:2::", ""},
    {"100::/64", "discard-only", "100::", "100::ffff:ffff:ffff:ffff",
     "ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "", "100:0:0:1::", ""},
    {"2001::/32", "Teredo", "2001::", "2001:0:ffff:ffff:ffff:ffff:ffff:ffff",
     "2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "",
     "2001:1::", "IETF protocol assignments 2001::/23"},
    {"2001:2::/48", "benchmarking", "2001:2::", "2001:2:0:ffff:ffff:ffff:ffff:ffff",
     "2001:1:ffff:ffff:ffff:ffff:ffff:ffff", "IETF protocol assignments 2001::/23",
     "2001:2:1::", "IETF protocol assignments 2001::/23"},
    // Its first /32 is Teredo's, named first (above); the rest, e.g. ORCHIDv2
    // 2001:20::/28 and AMT 2001:3::/32, is refused whole like 192.0.0.0/24.
    {"2001::/23", "IETF protocol assignments", "2001:1::", "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
     "2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "", "2001:200::", ""},
    {"2001:db8::/32", "documentation", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
     "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "", "2001:db9::", ""},
    {"2002::/16", "6to4", "2002::", "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
     "2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "", "2003::", ""},
    {"3fff::/20", "documentation", "3fff::", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
     "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "", "3fff:1000::", ""},
    {"5f00::/16", "segment routing (SRv6) SIDs",
     "5f00::", "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
     "", "5f01::", ""},
    {"fc00::/7", "unique-local (private)", "fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
     "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "", "fe00::", ""},
    {"fe80::/10", "link-local", "fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
     "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "", "fec0::", "site-local fec0::/10"},
    {"fec0::/10", "site-local", "fec0::", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
     "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local fe80::/10",
     "ff00::", "multicast ff00::/8"},
    {"ff00::/8", "multicast", "ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
     "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "site-local fec0::/10", nullptr, ""},
};

void check_range(const RangeCase& c) {
    const std::string reason = std::string(c.what) + " " + c.cidr;
    INFO(c.cidr);
    CHECK(why(c.first) == reason);
    CHECK(why(c.last) == reason);
    CHECK(cidr(c.cidr).contains(ip(c.first)));
    CHECK(cidr(c.cidr).contains(ip(c.last)));
    if (c.below != nullptr) {
        INFO("below: " << c.below);
        CHECK_FALSE(cidr(c.cidr).contains(ip(c.below)));
        CHECK(why(c.below) == c.below_why);
    }
    if (c.above != nullptr) {
        INFO("above: " << c.above);
        CHECK_FALSE(cidr(c.cidr).contains(ip(c.above)));
        CHECK(why(c.above) == c.above_why);
    }
}

// IPv4 addresses, 32 bits, as text.
std::string v4(uint32_t a) {
    return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
           std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
}

Resolved resolved(const std::string& text, uint16_t port = 443) {
    return Resolved{ip(text), Poco::Net::SocketAddress(text, port)};
}

// The reason `f` refuses with (a fail), or "" when it does not.
template <typename F>
std::string refusal(F f) {
    try {
        f();
        return "";
    } catch (const Outcome& o) {
        CHECK(o.final);
        return o.what();
    }
}

}  // namespace

TEST_CASE("address policy: every special range the code knows is in this table",
          "[export-downloader][address-policy]") {
    std::set<std::string> tested;
    for (const auto& c : kV4Cases)
        tested.insert(std::string(c.cidr) + " " + c.what);
    for (const auto& c : kV6Cases)
        tested.insert(std::string(c.cidr) + " " + c.what);
    std::set<std::string> known;
    for (const auto& r : special_ranges()) {
        known.insert(r.cidr + " " + r.what);
        CHECK(parse_cidr(r.cidr));
    }
    CHECK(known == tested);
}

TEST_CASE("address policy: IPv4 special ranges, first, last and just outside",
          "[export-downloader][address-policy]") {
    for (const auto& c : kV4Cases)
        check_range(c);
}

TEST_CASE("address policy: IPv6 special ranges, first, last and just outside",
          "[export-downloader][address-policy]") {
    for (const auto& c : kV6Cases)
        check_range(c);
}

TEST_CASE("address policy: public addresses pass", "[export-downloader][address-policy]") {
    for (const char* a :
         {"1.1.1.1", "8.8.8.8", "93.184.216.34", "100.63.0.1", "100.128.0.1", "172.15.0.1",
          "172.32.0.1", "192.0.1.1", "192.169.0.1", "198.20.0.1", "223.255.255.254",
          "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "2001:4860:4860::8888", "2001:200::1",
          "::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "::8.8.8.8"}) {
        INFO(a);
        CHECK(why(a) == "");
    }
}

TEST_CASE("address policy: the IPv4 address inside mapped, compatible and NAT64 forms decides",
          "[export-downloader][address-policy]") {
    // Every IPv4 range, through each embedding: first and last refused with
    // the form's name before the IPv4 reason, the outside neighbours as IPv4.
    for (const auto& c : kV4Cases) {
        const std::string reason = std::string(c.what) + " " + c.cidr;
        for (const char* first_or_last : {c.first, c.last}) {
            const std::string a = first_or_last;
            INFO(a);
            CHECK(why("::ffff:" + a) == "IPv4-mapped " + reason);
            CHECK(why("64:ff9b::" + a) == "NAT64 " + reason);
            if (a != "0.0.0.0")  // ::0.0.0.0 is ::, unspecified
                CHECK(why("::" + a) == "IPv4-compatible " + reason);
        }
        const std::pair<const char*, const char*> outside_cases[] = {{c.below, c.below_why},
                                                                     {c.above, c.above_why}};
        for (auto [outside, outside_why] : outside_cases) {
            if (outside == nullptr) continue;
            INFO(outside);
            std::string expect = *outside_why ? std::string(" ") + outside_why : "";
            CHECK(why(std::string("::ffff:") + outside) ==
                  (expect.empty() ? "" : "IPv4-mapped" + expect));
            CHECK(why(std::string("64:ff9b::") + outside) ==
                  (expect.empty() ? "" : "NAT64" + expect));
        }
    }
    CHECK(why("::ffff:127.0.0.1") == "IPv4-mapped loopback 127.0.0.0/8");
    CHECK(why("::ffff:7f00:1") == "IPv4-mapped loopback 127.0.0.0/8");
    CHECK(why("64:ff9b::7f00:1") == "NAT64 loopback 127.0.0.0/8");
    CHECK(why("::127.0.0.1") == "IPv4-compatible loopback 127.0.0.0/8");
    CHECK(why("::0.0.0.2") == "IPv4-compatible this-network 0.0.0.0/8");
    CHECK(why("::ffff:169.254.169.254") == "IPv4-mapped link-local 169.254.0.0/16");
    // The edges of the embedding prefixes themselves.
    CHECK(why("::fffe:ffff:ffff") == "");  // outside ::/96 and ::ffff:0:0/96
    CHECK(why("::1:0:0:0") == "");
    CHECK(why("64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff") == "");  // below 64:ff9b::/96
    CHECK(why("64:ff9b::1:0:0") == "");                         // above 64:ff9b::/96: not NAT64
    CHECK(why("64:ff9b::1:7f00:1") == "");

    // mapped_v4 is the mapped form only.
    CHECK(ip("::ffff:10.1.2.3").mapped_v4()->text() == "10.1.2.3");
    CHECK_FALSE(ip("64:ff9b::10.1.2.3").mapped_v4());
    CHECK_FALSE(ip("::10.1.2.3").mapped_v4());
    CHECK_FALSE(ip("10.1.2.3").mapped_v4());
}

TEST_CASE("address policy: every IPv4 address of a sweep matches the table",
          "[export-downloader][address-policy]") {
    // Walks the IPv4 space in odd steps, checking special_range against a
    // plain reading of kV4Cases (the first range that holds it).
    std::vector<std::pair<Cidr, std::string>> ranges;
    for (const auto& c : kV4Cases)
        ranges.emplace_back(cidr(c.cidr), std::string(c.what) + " " + c.cidr);
    auto expected = [&](const Ip& a) -> std::string {
        for (const auto& [r, reason] : ranges)
            if (r.contains(a)) return reason;
        return "";
    };
    for (uint64_t a = 0; a <= 0xffffffffULL; a += 0x000fedcbULL) {
        std::string t = v4(static_cast<uint32_t>(a));
        INFO(t);
        CHECK(special_range(ip(t)).value_or("") == expected(ip(t)));
    }
}

TEST_CASE("address policy: addresses are parsed strictly", "[export-downloader][address-policy]") {
    // The forms inet_aton (and so a resolver) would read as 127.0.0.1 or
    // another address are not addresses here.
    for (const char* s :
         {"0177.0.0.1", "0x7f.1",       "0x7f.0.0.1", "0x7f000001",      "127.1",
          "127.0.1",    "2130706433",   "127.0.0.01", "127.000.000.001", "00.0.0.0",
          "1.2.3.4.5",  "256.1.1.1",    "1.2.3",      " 1.2.3.4",        "1.2.3.4 ",
          "1.2.3.4/32", "fe80::1%eth0", "fe80::1%1",  "[::1]",           "::1/128",
          ":::1",       "1::2::3",      "12345::",    "::ffff:1.2.3",    "::ffff:1.2.3.04",
          "",           "localhost"}) {
        INFO('\'' << s << '\'');
        CHECK_FALSE(parse_ip(s));
    }
    CHECK(ip("0.0.0.0").family == AF_INET);
    CHECK(ip("255.255.255.255").text() == "255.255.255.255");
    CHECK(ip("::").family == AF_INET6);
    CHECK(ip("2001:DB8::1").text() == "2001:db8::1");
    CHECK(ip("0:0:0:0:0:0:0:1").text() == "::1");
    CHECK(ip("::ffff:1.2.3.4").text() == "::ffff:1.2.3.4");
    CHECK(ip("64:ff9b::192.0.2.1").text() == "64:ff9b::c000:201");
    CHECK(ip("10.1.2.3").b[0] == 10);
    CHECK(ip("10.1.2.3").b[3] == 3);
}

TEST_CASE("address policy: ranges", "[export-downloader][address-policy]") {
    CHECK(cidr("10.1.2.3").bits == 32);
    CHECK(cidr("fd00::").bits == 128);
    CHECK(cidr("10.0.0.0/0").bits == 0);
    CHECK(cidr("10.0.0.0/08").bits == 8);
    for (const char* s : {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/1000",
                          "10.0.0.0/8/8", "10.0.0.0/ 8", "10.0.0.0 /8", "0177.0.0.0/8",
                          "10.0.0.0/0x8", "/8", "fe80::%eth0/64", "example.com/8", ""}) {
        INFO('\'' << s << '\'');
        CHECK_FALSE(parse_cidr(s));
    }
    const Cidr c16 = cidr("10.1.0.0/16");
    CHECK(c16.contains(ip("10.1.0.0")));
    CHECK(c16.contains(ip("10.1.255.255")));
    CHECK_FALSE(c16.contains(ip("10.0.255.255")));
    CHECK_FALSE(c16.contains(ip("10.2.0.0")));
    // Host bits in the base do not matter.
    CHECK(cidr("10.1.2.3/16").contains(ip("10.1.200.1")));
    // Not on a byte boundary.
    const Cidr c23 = cidr("192.168.2.0/23");
    CHECK(c23.contains(ip("192.168.2.0")));
    CHECK(c23.contains(ip("192.168.3.255")));
    CHECK_FALSE(c23.contains(ip("192.168.1.255")));
    CHECK_FALSE(c23.contains(ip("192.168.4.0")));
    // /0 holds its whole family, /32 and /128 one address.
    CHECK(cidr("0.0.0.0/0").contains(ip("255.255.255.255")));
    CHECK_FALSE(cidr("0.0.0.0/0").contains(ip("::1")));
    CHECK(cidr("::/0").contains(ip("ffff::1")));
    CHECK_FALSE(cidr("::/0").contains(ip("1.2.3.4")));
    CHECK(cidr("10.1.2.3/32").contains(ip("10.1.2.3")));
    CHECK_FALSE(cidr("10.1.2.3/32").contains(ip("10.1.2.4")));
    CHECK(cidr("fd00::1/128").contains(ip("fd00::1")));
    CHECK_FALSE(cidr("fd00::1/128").contains(ip("fd00::2")));
    // An IPv4 range holds the mapped form of its addresses, not the others.
    CHECK(c16.contains(ip("::ffff:10.1.2.3")));
    CHECK_FALSE(c16.contains(ip("64:ff9b::10.1.2.3")));
    CHECK_FALSE(c16.contains(ip("::10.1.2.3")));
    // An IPv6 range written over mapped addresses holds those only.
    CHECK(cidr("::ffff:10.0.0.0/104").contains(ip("::ffff:10.9.9.9")));
    CHECK_FALSE(cidr("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")));
}

TEST_CASE("address policy: allowed_hosts entries", "[export-downloader][address-policy]") {
    CHECK(normalise_allowed_host("Exports.Example.COM.") == "exports.example.com");
    CHECK(normalise_allowed_host(" .Files.Example.com ") == ".files.example.com");
    CHECK(normalise_allowed_host("[::1]") == "::1");
    CHECK(normalise_allowed_host("::0001") == "::1");
    CHECK(normalise_allowed_host("[2001:DB8::A]") == "2001:db8::a");
    CHECK(normalise_allowed_host("203.0.113.7") == "203.0.113.7");
    CHECK(normalise_allowed_host("localhost") == "localhost");
    for (const char* e : {"",
                          " ",
                          ".",
                          "*",
                          "*.example.com",
                          "ex ample.com",
                          "https://a.example",
                          "a.example:443",
                          "a.example/x",
                          "u@a.example",
                          "..example.com",
                          "a..example",
                          "127.1",
                          "0x7f.0.0.1",
                          "2130706433",
                          "127.0.0.01",
                          ".0.1",
                          ".1.2.3.4",
                          "fe80::1%eth0",
                          "[fe80::1%eth0]",
                          "[::1",
                          "bücher.example"}) {
        INFO('\'' << e << '\'');
        try {
            normalise_allowed_host(e);
            FAIL("accepted");
        } catch (const std::runtime_error& err) {
            CHECK_THAT(err.what(), Catch::StartsWith("config: 'allowed_hosts': '" + std::string(e) +
                                                     "' is not a host name"));
        }
    }
}

TEST_CASE("address policy: the host allow-list", "[export-downloader][address-policy]") {
    std::vector<std::string> hosts;
    for (const char* e : {"exports.example.com", ".files.example.com", "[::1]", "203.0.113.7"})
        hosts.push_back(normalise_allowed_host(e));
    const AddressPolicy policy(hosts, {}, false);
    for (const char* h : {"exports.example.com", "a.files.example.com", "a.b.files.example.com",
                          "::1", "203.0.113.7"}) {
        INFO(h);
        CHECK(policy.host_allowed(h));
    }
    for (const char* h :
         {"example.com", "a.exports.example.com", "exports.example.com.evil.test",
          "xexports.example.com", "files.example.com", "badfiles.example.com",
          "a.files.example.com.evil.test", "203.0.113.8", "203.0.113.70", "::2", "", "."}) {
        INFO('\'' << h << '\'');
        CHECK_FALSE(policy.host_allowed(h));
    }
    CHECK_FALSE(AddressPolicy().host_allowed("exports.example.com"));
}

TEST_CASE("address policy: the address decision", "[export-downloader][address-policy]") {
    const AddressPolicy strict({}, {}, false);
    CHECK(strict.address_refusal(ip("127.0.0.1")) == "loopback 127.0.0.0/8");
    CHECK(strict.address_refusal(ip("::ffff:10.0.0.1")) == "IPv4-mapped private 10.0.0.0/8");
    CHECK_FALSE(strict.address_refusal(ip("8.8.8.8")));
    CHECK_FALSE(strict.address_refusal(ip("2606:4700::1")));

    // allow_private_addresses: every address.
    const AddressPolicy anything({}, {}, true);
    for (const auto& r : special_ranges()) {
        INFO(r.cidr);
        CHECK_FALSE(anything.address_refusal(cidr(r.cidr).base));
    }

    // allowed_cidrs: those ranges only (and the mapped forms of IPv4 ones).
    const AddressPolicy some({}, {cidr("10.20.0.0/16"), cidr("fd00:1::/64"), cidr("127.0.0.1")},
                             false);
    CHECK_FALSE(some.address_refusal(ip("10.20.0.0")));
    CHECK_FALSE(some.address_refusal(ip("10.20.255.255")));
    CHECK_FALSE(some.address_refusal(ip("::ffff:10.20.1.2")));
    CHECK(some.address_refusal(ip("10.21.0.0")) == "private 10.0.0.0/8");
    CHECK(some.address_refusal(ip("10.19.255.255")) == "private 10.0.0.0/8");
    CHECK(some.address_refusal(ip("64:ff9b::10.20.1.2")) == "NAT64 private 10.0.0.0/8");
    CHECK_FALSE(some.address_refusal(ip("fd00:1::5")));
    CHECK(some.address_refusal(ip("fd00:2::5")) == "unique-local (private) fc00::/7");
    CHECK_FALSE(some.address_refusal(ip("127.0.0.1")));
    CHECK(some.address_refusal(ip("127.0.0.2")) == "loopback 127.0.0.0/8");
    CHECK(some.address_refusal(ip("::1")) == "loopback ::1/128");
    CHECK_FALSE(some.address_refusal(ip("8.8.8.8")));
}

TEST_CASE("address policy: the usable addresses of a host, in order",
          "[export-downloader][address-policy]") {
    const AddressPolicy strict({}, {}, false);
    auto kept = strict.usable("h.example", {resolved("127.0.0.1"), resolved("8.8.8.8", 8443),
                                            resolved("10.0.0.1"), resolved("2606:4700::1", 8443)});
    REQUIRE(kept.size() == 2);
    CHECK(kept[0].ip.text() == "8.8.8.8");
    CHECK(kept[0].address.toString() == "8.8.8.8:8443");
    CHECK(kept[1].ip.text() == "2606:4700::1");

    CHECK(refusal([&] {
              strict.usable("h.example", {resolved("127.0.0.1"), resolved("10.0.0.1"),
                                          resolved("::ffff:192.168.1.1")});
          }) ==
          "the host 'h.example' resolves to refused address(es): 127.0.0.1 (loopback "
          "127.0.0.0/8), 10.0.0.1 (private 10.0.0.0/8), ::ffff:192.168.1.1 (IPv4-mapped "
          "private 192.168.0.0/16); private, loopback and link-local addresses need "
          "allow_private_addresses or allowed_cidrs");
}

TEST_CASE("address policy: resolution, odd IPv4 forms included, then the policy",
          "[export-downloader][address-policy]") {
    auto only = [](const std::vector<Resolved>& rs) {
        REQUIRE(rs.size() == 1);
        return rs.front().ip.text();
    };
    CHECK(only(resolve("127.0.0.1", 8443)) == "127.0.0.1");
    CHECK(resolve("127.0.0.1", 8443).front().address.toString() == "127.0.0.1:8443");
    CHECK(only(resolve("::1", 443)) == "::1");
    CHECK(resolve("::1", 443).front().address.toString() == "[::1]:443");
    // The resolver reads these as 127.0.0.1 (parse_url refuses them first);
    // the address checked is the one resolved, so the policy still holds.
    const AddressPolicy strict({}, {}, false);
    for (const char* odd : {"0177.0.0.1", "0x7f.1", "127.1", "2130706433", "0x7f000001"}) {
        INFO(odd);
        CHECK(only(resolve(odd, 443)) == "127.0.0.1");
        CHECK_THAT(refusal([&] { strict.resolve_allowed(odd, 443); }),
                   Catch::Contains("resolves to refused address(es): 127.0.0.1 (loopback"));
    }
    // localhost: loopback whatever /etc/hosts says, each address once.
    auto local = resolve("localhost", 443);
    REQUIRE_FALSE(local.empty());
    std::set<std::string> seen;
    for (const auto& r : local) {
        INFO(r.ip.text());
        CHECK(seen.insert(r.ip.text()).second);
        CHECK_THAT(strict.address_refusal(r.ip).value_or(""), Catch::Contains("loopback"));
        CHECK(r.address.port() == 443);
    }
    CHECK_THAT(refusal([&] { strict.resolve_allowed("localhost", 443); }),
               Catch::StartsWith("the host 'localhost' resolves to refused address(es): "));
    const AddressPolicy loopback({}, {cidr("127.0.0.0/8"), cidr("::1")}, false);
    CHECK(loopback.resolve_allowed("localhost", 443).size() == local.size());
}

// The request verifier: every scheme, its failure modes, and the signing
// helpers the CLI reuses.
#include "verify/Verifier.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <thread>

using namespace clayhook;
using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

namespace Catch {
template <>
struct StringMaker<clayhook::VerifyFailure> {
    static std::string convert(clayhook::VerifyFailure f) { return clayhook::failure_name(f); }
};
}  // namespace Catch

namespace {

constexpr const char* kSecretValue = "test-secret-value-0123456789";
constexpr const char* kBody =
    R"({"event":"enrichment.completed","table_id":"t_abc123","row_id":"row_00000042"})";

Secret secret(std::string value, bool resolved = true, std::string ref = "${TEST_SECRET}") {
    Secret s;
    s.ref = std::move(ref);
    s.resolved = resolved;
    if (resolved) s.value = std::move(value);
    if (!resolved) s.error = "TEST_SECRET is not set";
    return s;
}

VerifyConfig config(VerifyScheme scheme, std::vector<Secret> secrets) {
    VerifyConfig c;
    c.scheme = scheme;
    switch (scheme) {
        case VerifyScheme::hmac_sha256:
            c.header = "x-clay-signature";
            break;
        case VerifyScheme::hmac_sha256_timestamp:
            c.header = "x-clay-signature";
            c.timestamp_header = "x-clay-timestamp";
            break;
        case VerifyScheme::token:
            c.header = "x-clay-webhook-auth";
            break;
        case VerifyScheme::standard_webhooks:
            c.header = "webhook-signature";
            c.timestamp_header = "webhook-timestamp";
            break;
    }
    c.tolerance = 300s;
    c.secrets = std::move(secrets);
    return c;
}

VerifyConfig config(VerifyScheme scheme, const std::string& value = kSecretValue) {
    return config(scheme, std::vector<Secret>{secret(value)});
}

// Request headers, looked up as the HTTP layer does.
struct Headers {
    std::map<std::string, std::string, std::less<>> map;
    HeaderLookup lookup() const {
        return [this](std::string_view name) -> const std::string* {
            auto it = map.find(name);
            return it == map.end() ? nullptr : &it->second;
        };
    }
};

Headers headers(std::vector<std::pair<std::string, std::string>> list) {
    Headers h;
    for (auto& [k, v] : list)
        h.map[k] = v;
    return h;
}

Clock::time_point at(int64_t unix_seconds) {
    return Clock::time_point(std::chrono::seconds(unix_seconds));
}

const Clock::time_point kNow = at(1'764'158'442);  // 2025-11-26T12:00:42Z

VerifyFailure check(const VerifyConfig& c, std::string_view body, const Headers& h,
                    Clock::time_point now = kNow) {
    return Verifier(c).verify(body, h.lookup(), now);
}

std::string upper(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
    return s;
}

const char* scheme_label(VerifyScheme s) {
    return scheme_name(s);
}

const std::vector<VerifyScheme> kAllSchemes = {
    VerifyScheme::hmac_sha256, VerifyScheme::hmac_sha256_timestamp, VerifyScheme::token,
    VerifyScheme::standard_webhooks};

// A secret usable by every scheme (standard-webhooks needs whsec_<base64>).
const std::string kWhsec = "whsec_" + base64_encode("a 24-byte key for tests!");

std::string secret_for(VerifyScheme s) {
    return s == VerifyScheme::standard_webhooks ? kWhsec : kSecretValue;
}

}  // namespace

TEST_CASE("the HMAC helpers match RFC 4231", "[verify]") {
    // Test case 2: a short key.
    CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    // Test case 6: a key longer than a block is hashed first.
    CHECK(hmac_sha256_hex(std::string(131, '\xaa'),
                          "Test Using Larger Than Block-Size Key - Hash Key First") ==
          "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST_CASE("the verifier's precomputed HMAC agrees with RFC 4231, short and long keys", "[verify]") {
    auto c = config(VerifyScheme::hmac_sha256, "Jefe");
    CHECK(check(c, "what do ya want for nothing?",
                headers({{"x-clay-signature",
                          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"}})) ==
          VerifyFailure::none);
    auto long_key = config(VerifyScheme::hmac_sha256, std::string(131, '\xaa'));
    CHECK(check(long_key, "Test Using Larger Than Block-Size Key - Hash Key First",
                headers({{"x-clay-signature",
                          "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"}})) ==
          VerifyFailure::none);
    // Exactly one block: neither hashed nor padded with anything but zeros.
    std::string block_key(64, 'k');
    CHECK(check(config(VerifyScheme::hmac_sha256, block_key), kBody,
                headers({{"x-clay-signature", hmac_sha256_hex(block_key, kBody)}})) ==
          VerifyFailure::none);
}

TEST_CASE("hmac-sha256: a correctly signed body is accepted", "[verify]") {
    auto c = config(VerifyScheme::hmac_sha256);
    CHECK(check(c, kBody, headers({{"x-clay-signature", hmac_sha256_hex(kSecretValue, kBody)}})) ==
          VerifyFailure::none);
}

TEST_CASE("hmac-sha256: the sha256= prefix and upper-case hex are accepted", "[verify]") {
    auto c = config(VerifyScheme::hmac_sha256);
    std::string hex = hmac_sha256_hex(kSecretValue, kBody);
    CHECK(check(c, kBody, headers({{"x-clay-signature", "sha256=" + hex}})) == VerifyFailure::none);
    CHECK(check(c, kBody, headers({{"x-clay-signature", upper(hex)}})) == VerifyFailure::none);
    CHECK(check(c, kBody, headers({{"x-clay-signature", "sha256=" + upper(hex)}})) ==
          VerifyFailure::none);
}

TEST_CASE("a tampered body is refused as bad_signature in every scheme that signs it", "[verify]") {
    std::string tampered = kBody;
    tampered[tampered.size() - 3] = '3';  // row_00000042 -> row_00000032
    for (auto s : {VerifyScheme::hmac_sha256, VerifyScheme::hmac_sha256_timestamp,
                   VerifyScheme::standard_webhooks}) {
        INFO(scheme_label(s));
        auto c = config(s, secret_for(s));
        auto h = headers(sign_headers(c, kBody, kNow, "msg_1"));
        CHECK(check(c, kBody, h) == VerifyFailure::none);
        CHECK(check(c, tampered, h) == VerifyFailure::bad_signature);
    }
}

TEST_CASE("a signature made with another secret is refused in every scheme", "[verify]") {
    for (auto s : kAllSchemes) {
        INFO(scheme_label(s));
        std::string other = s == VerifyScheme::standard_webhooks
                                ? "whsec_" + base64_encode("a different 24-byte key!")
                                : "another-secret-value";
        auto h = headers(sign_headers(config(s, other), kBody, kNow, "msg_1"));
        CHECK(check(config(s, secret_for(s)), kBody, h) == VerifyFailure::bad_signature);
    }
}

TEST_CASE("a missing signature, timestamp or id header is missing_header", "[verify]") {
    for (auto s : kAllSchemes) {
        auto c = config(s, secret_for(s));
        auto signed_headers = sign_headers(c, kBody, kNow, "msg_1");
        CHECK(check(c, kBody, Headers{}) == VerifyFailure::missing_header);
        // Drop each header the sender attaches in turn.
        for (size_t drop = 0; drop < signed_headers.size(); ++drop) {
            auto h = headers(signed_headers);
            h.map.erase(signed_headers[drop].first);
            INFO(scheme_label(s) << " without " << signed_headers[drop].first);
            CHECK(check(c, kBody, h) == VerifyFailure::missing_header);
        }
    }
}

TEST_CASE("the second of two secrets is accepted (rotation)", "[verify]") {
    for (auto s : kAllSchemes) {
        INFO(scheme_label(s));
        std::string old_value = s == VerifyScheme::standard_webhooks
                                    ? "whsec_" + base64_encode("the old 24-byte key here")
                                    : "old-secret-value";
        auto both = config(s, {secret(old_value, true, "${OLD}"), secret(secret_for(s))});
        auto signed_with_new = headers(sign_headers(config(s, secret_for(s)), kBody, kNow, "m"));
        auto signed_with_old = headers(sign_headers(config(s, old_value), kBody, kNow, "m"));
        CHECK(check(both, kBody, signed_with_new) == VerifyFailure::none);
        CHECK(check(both, kBody, signed_with_old) == VerifyFailure::none);
    }
}

TEST_CASE("a header with several signatures passes when only the last one matches", "[verify]") {
    std::string good = hmac_sha256_hex(kSecretValue, kBody);
    std::string bad1 = hmac_sha256_hex("nope-1", kBody), bad2 = hmac_sha256_hex("nope-2", kBody);
    auto c = config(VerifyScheme::hmac_sha256);
    // adnanh/webhook style: comma separated, with or without prefixes and spaces.
    CHECK(check(c, kBody, headers({{"x-clay-signature", bad1 + "," + bad2 + "," + good}})) ==
          VerifyFailure::none);
    CHECK(check(c, kBody,
                headers(
                    {{"x-clay-signature", "sha256=" + bad1 + ", sha1=abcdef, sha256=" + good}})) ==
          VerifyFailure::none);
    CHECK(check(c, kBody, headers({{"x-clay-signature", bad1 + " " + bad2 + " " + good}})) ==
          VerifyFailure::none);
    CHECK(check(c, kBody, headers({{"x-clay-signature", bad1 + "," + bad2}})) ==
          VerifyFailure::bad_signature);

    // Standard Webhooks: space-delimited v1 entries; other versions are ignored.
    auto sw = config(VerifyScheme::standard_webhooks, kWhsec);
    auto h = headers(sign_headers(sw, kBody, kNow, "msg_1"));
    std::string right = h.map["webhook-signature"];
    std::string wrong = "v1," + hmac_sha256_base64("x", "y");
    h.map["webhook-signature"] = wrong + " v1a,bm90IGNoZWNrZWQ= v2,abc " + right;
    CHECK(check(sw, kBody, h) == VerifyFailure::none);
    h.map["webhook-signature"] = wrong + " " + wrong;
    CHECK(check(sw, kBody, h) == VerifyFailure::bad_signature);
}

TEST_CASE("a signature header holding nothing checkable is malformed_header", "[verify]") {
    auto c = config(VerifyScheme::hmac_sha256);
    for (const std::string& junk : std::vector<std::string>{
             "", "sha256=", "not-hex", std::string(64, 'g'), std::string(63, 'a'),
             std::string(66, 'a'), "sha1=da39a3ee5e6b4b0d3255bfef95601890afd80709"}) {
        INFO("'" << junk << "'");
        CHECK(check(c, kBody, headers({{"x-clay-signature", junk}})) ==
              VerifyFailure::malformed_header);
    }
    auto sw = config(VerifyScheme::standard_webhooks, kWhsec);
    auto h = headers(sign_headers(sw, kBody, kNow, "msg_1"));
    for (std::string junk : {"", "v1,", "v1,not base64!", "v1a,AAAA", "v1,AAAA",
                             "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}) {
        INFO("'" << junk << "'");
        h.map["webhook-signature"] = junk;
        CHECK(check(sw, kBody, h) == VerifyFailure::malformed_header);
    }
    // The right signature under another version label is not a v1 signature.
    std::string right = headers(sign_headers(sw, kBody, kNow, "msg_1")).map["webhook-signature"];
    h.map["webhook-signature"] = "v2," + right.substr(3) + " v1a," + right.substr(3);
    CHECK(check(sw, kBody, h) == VerifyFailure::malformed_header);
    // Standard Webhooks requires a message id.
    auto no_id = headers(sign_headers(sw, kBody, kNow, ""));
    CHECK(check(sw, kBody, no_id) == VerifyFailure::malformed_header);
}

TEST_CASE("hmac-sha256-timestamp: the timestamp is signed with the body", "[verify]") {
    auto c = config(VerifyScheme::hmac_sha256_timestamp);
    std::string ts = "1764158442";
    auto h = headers({{"x-clay-timestamp", ts},
                      {"x-clay-signature", hmac_sha256_hex(kSecretValue, ts + "." + kBody)}});
    CHECK(check(c, kBody, h) == VerifyFailure::none);
    // A replayed signature with a fresh timestamp does not verify.
    h.map["x-clay-timestamp"] = "1764158443";
    CHECK(check(c, kBody, h) == VerifyFailure::bad_signature);
    // Nor does a signature over the body alone.
    h.map["x-clay-timestamp"] = ts;
    h.map["x-clay-signature"] = hmac_sha256_hex(kSecretValue, kBody);
    CHECK(check(c, kBody, h) == VerifyFailure::bad_signature);
}

TEST_CASE("stale and future timestamps are refused, exactly at the tolerance is accepted",
          "[verify]") {
    for (auto s : {VerifyScheme::hmac_sha256_timestamp, VerifyScheme::standard_webhooks}) {
        INFO(scheme_label(s));
        auto c = config(s, secret_for(s));
        auto h = headers(sign_headers(c, kBody, kNow, "msg_1"));
        CHECK(check(c, kBody, h, kNow) == VerifyFailure::none);
        CHECK(check(c, kBody, h, kNow + 300s) == VerifyFailure::none);
        CHECK(check(c, kBody, h, kNow - 300s) == VerifyFailure::none);
        CHECK(check(c, kBody, h, kNow + 300s + 1ms) == VerifyFailure::stale_timestamp);
        CHECK(check(c, kBody, h, kNow + 1h) == VerifyFailure::stale_timestamp);
        CHECK(check(c, kBody, h, kNow - 300s - 1ms) == VerifyFailure::future_timestamp);
        CHECK(check(c, kBody, h, kNow - 1h) == VerifyFailure::future_timestamp);
        // The tolerance is the config's.
        c.tolerance = 10s;
        CHECK(check(c, kBody, h, kNow + 10s) == VerifyFailure::none);
        CHECK(check(c, kBody, h, kNow + 11s) == VerifyFailure::stale_timestamp);
    }
}

TEST_CASE("a timestamp that is not unix seconds is malformed_header", "[verify]") {
    for (auto s : {VerifyScheme::hmac_sha256_timestamp, VerifyScheme::standard_webhooks}) {
        auto c = config(s, secret_for(s));
        auto h = headers(sign_headers(c, kBody, kNow, "msg_1"));
        std::string ts_header =
            s == VerifyScheme::standard_webhooks ? "webhook-timestamp" : "x-clay-timestamp";
        for (std::string bad :
             {"", "abc", "1764158442a", "-1764158442", "+1764158442", "1764158442.5",
              "2025-11-26T12:00:42Z", "0x6927", "1 2", "99999999999999999999999"}) {
            INFO(scheme_label(s) << " timestamp '" << bad << "'");
            h.map[ts_header] = bad;
            CHECK(check(c, kBody, h) == VerifyFailure::malformed_header);
        }
        // Numeric but absurdly far ahead: future, without overflowing the clock.
        h.map[ts_header] = "9223372036854775807";
        CHECK(check(c, kBody, h) == VerifyFailure::future_timestamp);
    }
}

namespace {

// Headers for kBody signed over an arbitrary timestamp text, as a sender
// with a broken (or hostile) clock would send them.
Headers signed_with_timestamp(VerifyScheme s, const std::string& ts) {
    if (s == VerifyScheme::hmac_sha256_timestamp)
        return headers({{"x-clay-timestamp", ts},
                        {"x-clay-signature", hmac_sha256_hex(kSecretValue, ts + "." + kBody)}});
    const std::string key = "a 24-byte key for tests!";  // kWhsec, decoded
    return headers(
        {{"webhook-id", "msg_1"},
         {"webhook-timestamp", ts},
         {"webhook-signature", "v1," + hmac_sha256_base64(key, "msg_1." + ts + "." + kBody)}});
}

const std::vector<VerifyScheme> kTimestamped = {VerifyScheme::hmac_sha256_timestamp,
                                                VerifyScheme::standard_webhooks};

}  // namespace

// 2^63 ns after the epoch is 9223372036.85 s (year 2262): the clock's
// nanoseconds cannot hold a timestamp past it. Such timestamps must be refused
// as future, without signed overflow (UBSan aborts the sanitizer build on it),
// and without wrapping around into the accepted window.
TEST_CASE("timestamps past the clock's range are future_timestamp, never an overflow",
          "[verify][timestamp]") {
    const int64_t now_s = 1'764'158'442;
    // 2^64 ns is 18446744073.7 s (~585 years): a timestamp that far ahead
    // wraps to now + 0.3 s in 64-bit nanoseconds.
    const std::string wraps_to_now = std::to_string(now_s + 18'446'744'074);
    for (auto s : kTimestamped) {
        INFO(scheme_label(s));
        auto c = config(s, secret_for(s));
        CHECK(check(c, kBody, signed_with_timestamp(s, std::to_string(now_s))) ==
              VerifyFailure::none);
        for (std::string ts :
             {std::string("20000000000"), wraps_to_now, std::string("10000000000"),
              std::string("9223372037"), std::string("18446744073"), std::string("18446744074"),
              std::string("99999999999"), std::string("100000000000"), std::string("4294967296000"),
              std::string("9223372036854775807"), std::string("9223372036854775808"),
              std::string("9999999999999999999")}) {
            INFO("timestamp " << ts);
            CHECK(check(c, kBody, signed_with_timestamp(s, ts)) == VerifyFailure::future_timestamp);
        }
        // Longer than any 64-bit number: not a timestamp at all.
        for (std::string ts : {std::string("18446744073709551615"),
                               std::string("18446744073709551616"), std::string(25, '9')}) {
            INFO("timestamp " << ts);
            CHECK(check(c, kBody, signed_with_timestamp(s, ts)) == VerifyFailure::malformed_header);
        }
        // Leading zeros are digits like any other; the value is what counts.
        CHECK(check(c, kBody, signed_with_timestamp(s, "000" + std::to_string(now_s))) ==
              VerifyFailure::none);
        CHECK(check(c, kBody, signed_with_timestamp(s, "0")) == VerifyFailure::stale_timestamp);
    }
}

TEST_CASE("the clock's own extremes compare without overflow", "[verify][timestamp]") {
    for (auto s : kTimestamped) {
        INFO(scheme_label(s));
        auto c = config(s, secret_for(s));
        auto h = signed_with_timestamp(s, "1764158442");
        CHECK(check(c, kBody, h, Clock::time_point::max()) == VerifyFailure::stale_timestamp);
        CHECK(check(c, kBody, h, Clock::time_point::min()) == VerifyFailure::future_timestamp);
        CHECK(check(c, kBody, signed_with_timestamp(s, "0"), Clock::time_point::min()) ==
              VerifyFailure::future_timestamp);
        CHECK(check(c, kBody, signed_with_timestamp(s, "99999999999"), Clock::time_point::max()) ==
              VerifyFailure::future_timestamp);
        // The largest tolerance the type holds: nothing in range is refused,
        // and nothing overflows.
        c.tolerance = std::chrono::milliseconds::max();
        CHECK(check(c, kBody, h, Clock::time_point::max()) == VerifyFailure::none);
        CHECK(check(c, kBody, h, Clock::time_point::min()) == VerifyFailure::none);
        // Past 100000000000 (the year 5138) is future whatever the tolerance.
        CHECK(check(c, kBody, signed_with_timestamp(s, "100000000000")) == VerifyFailure::none);
        CHECK(check(c, kBody, signed_with_timestamp(s, "100000000001")) ==
              VerifyFailure::future_timestamp);
    }
}

TEST_CASE("the tolerance is exact to the nanosecond on both sides", "[verify][timestamp]") {
    for (auto s : kTimestamped) {
        INFO(scheme_label(s));
        auto c = config(s, secret_for(s));
        auto h = signed_with_timestamp(s, "1764158442");  // kNow
        using std::chrono::nanoseconds;
        // Too old.
        CHECK(check(c, kBody, h, kNow + 300s) == VerifyFailure::none);
        CHECK(check(c, kBody, h, kNow + 300s + nanoseconds(1)) == VerifyFailure::stale_timestamp);
        CHECK(check(c, kBody, h, kNow + 300s + nanoseconds(999'999)) ==
              VerifyFailure::stale_timestamp);
        CHECK(check(c, kBody, h, kNow + 300s + 1ms) == VerifyFailure::stale_timestamp);
        // Too far ahead.
        CHECK(check(c, kBody, h, kNow - 300s) == VerifyFailure::none);
        CHECK(check(c, kBody, h, kNow - 300s + nanoseconds(1)) == VerifyFailure::none);
        CHECK(check(c, kBody, h, kNow - 300s - nanoseconds(1)) == VerifyFailure::future_timestamp);
        CHECK(check(c, kBody, h, kNow - 300s - nanoseconds(999'999)) ==
              VerifyFailure::future_timestamp);
        // A tolerance that is not whole seconds.
        c.tolerance = 1500ms;
        CHECK(check(c, kBody, h, kNow + 1500ms) == VerifyFailure::none);
        CHECK(check(c, kBody, h, kNow + 1500ms + nanoseconds(1)) == VerifyFailure::stale_timestamp);
        CHECK(check(c, kBody, h, kNow - 1500ms) == VerifyFailure::none);
        CHECK(check(c, kBody, h, kNow - 1500ms - nanoseconds(1)) ==
              VerifyFailure::future_timestamp);
        // The largest tolerance the config allows (ten years), both sides.
        c.tolerance = std::chrono::milliseconds(10LL * 366 * 86'400'000);
        CHECK(check(c, kBody, h, kNow + c.tolerance) == VerifyFailure::none);
        CHECK(check(c, kBody, h, kNow + c.tolerance + 1ms) == VerifyFailure::stale_timestamp);
        CHECK(check(c, kBody, h, kNow - c.tolerance) == VerifyFailure::none);
        CHECK(check(c, kBody, h, kNow - c.tolerance - 1ms) == VerifyFailure::future_timestamp);
    }
}

TEST_CASE("token: the right token passes, a wrong or missing one does not", "[verify]") {
    auto c = config(VerifyScheme::token);
    std::string token = kSecretValue;
    CHECK(check(c, kBody, headers({{"x-clay-webhook-auth", token}})) == VerifyFailure::none);
    // The body is not part of a token check.
    CHECK(check(c, "anything", headers({{"x-clay-webhook-auth", token}})) == VerifyFailure::none);
    for (std::string wrong : {std::string("wrong"), token.substr(0, token.size() - 1), token + "9",
                              upper(token), std::string(token.size(), 'x')}) {
        INFO("'" << wrong << "'");
        CHECK(check(c, kBody, headers({{"x-clay-webhook-auth", wrong}})) ==
              VerifyFailure::bad_signature);
    }
    CHECK(check(c, kBody, headers({{"x-clay-webhook-auth", ""}})) ==
          VerifyFailure::malformed_header);
    CHECK(check(c, kBody, headers({{"x-other", token}})) == VerifyFailure::missing_header);
}

TEST_CASE("the Standard Webhooks test vector from the spec verifies", "[verify]") {
    auto c = config(VerifyScheme::standard_webhooks, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    std::string body = R"({"test": 2432232314})";
    auto h = headers({{"webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"},
                      {"webhook-timestamp", "1614265330"},
                      {"webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}});
    CHECK(check(c, body, h, at(1614265330)) == VerifyFailure::none);
    CHECK(check(c, body, h, at(1614265330) + 10min) == VerifyFailure::stale_timestamp);
    // The id is signed too.
    h.map["webhook-id"] = "msg_p5jXN8AQM9LWM0D4loKWxJel";
    CHECK(check(c, body, h, at(1614265330)) == VerifyFailure::bad_signature);

    // And the signing helper reproduces the spec's signature.
    auto signed_headers = sign_headers(c, body, at(1614265330), "msg_p5jXN8AQM9LWM0D4loKWxJek");
    auto signed_map = headers(signed_headers).map;
    CHECK(signed_map["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    CHECK(signed_map["webhook-timestamp"] == "1614265330");
    CHECK(signed_map["webhook-id"] == "msg_p5jXN8AQM9LWM0D4loKWxJek");
}

TEST_CASE("a standard-webhooks secret without the whsec_ prefix is used as bare base64",
          "[verify]") {
    auto prefixed =
        config(VerifyScheme::standard_webhooks, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    auto bare = config(VerifyScheme::standard_webhooks, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    auto h = headers(sign_headers(prefixed, kBody, kNow, "msg_1"));
    CHECK(check(bare, kBody, h) == VerifyFailure::none);
}

TEST_CASE("unresolved secrets are skipped, with none resolved verify says no_secret", "[verify]") {
    for (auto s : kAllSchemes) {
        INFO(scheme_label(s));
        auto usable = config(s, secret_for(s));
        auto h = headers(sign_headers(usable, kBody, kNow, "msg_1"));
        // An unresolved secret first, then the real one: still verifies, and
        // sign_headers signs with the first usable one.
        auto mixed = config(s, {secret("", false, "${MISSING}"), secret(secret_for(s))});
        CHECK(Verifier(mixed).usable_secrets() == 1);
        CHECK(check(mixed, kBody, h) == VerifyFailure::none);
        CHECK(check(mixed, kBody, headers(sign_headers(mixed, kBody, kNow, "msg_1"))) ==
              VerifyFailure::none);

        auto none = config(s, {secret("", false, "${A}"), secret("", false, "${B}")});
        CHECK(Verifier(none).usable_secrets() == 0);
        CHECK(check(none, kBody, h) == VerifyFailure::no_secret);
        CHECK(check(none, kBody, Headers{}) == VerifyFailure::no_secret);
        CHECK_THROWS_AS(sign_headers(none, kBody, kNow, "msg_1"), std::invalid_argument);
    }
}

TEST_CASE("sign_headers output verifies for every scheme", "[verify]") {
    for (auto s : kAllSchemes) {
        INFO(scheme_label(s));
        auto c = config(s, secret_for(s));
        for (std::string body : {std::string(kBody), std::string(), std::string(100'000, 'x')}) {
            auto signed_headers = sign_headers(c, body, kNow + 123ms, "msg_round_trip");
            CHECK_FALSE(signed_headers.empty());
            CHECK(check(c, body, headers(signed_headers)) == VerifyFailure::none);
        }
    }
    // The headers are the ones the config names.
    auto ts = config(VerifyScheme::hmac_sha256_timestamp);
    ts.header = "x-sig";
    ts.timestamp_header = "x-ts";
    auto m = headers(sign_headers(ts, kBody, kNow, "")).map;
    CHECK(m.count("x-sig") == 1);
    CHECK(m["x-ts"] == "1764158442");
}

TEST_CASE("a standard-webhooks secret that is not base64 is refused without its value",
          "[verify]") {
    const std::string value = "whsec_this is-not*base64!";
    auto c = config(VerifyScheme::standard_webhooks, {secret(value, true, "${CLAY_STD_SECRET}")});
    try {
        Verifier v(c);
        FAIL("the constructor accepted a secret that is not base64");
    } catch (const std::invalid_argument& e) {
        std::string msg = e.what();
        CHECK_THAT(msg, Catch::Contains("${CLAY_STD_SECRET}"));
        CHECK_THAT(msg, Catch::Contains("whsec_"));
        CHECK(msg.find("this is-not*base64!") == std::string::npos);
    }
    CHECK_THROWS_AS(sign_headers(c, kBody, kNow, "msg_1"), std::invalid_argument);
    // An empty decode is no key either.
    CHECK_THROWS_AS(Verifier(config(VerifyScheme::standard_webhooks, "whsec_")),
                    std::invalid_argument);
}

TEST_CASE("an empty resolved secret is refused by the constructor", "[verify]") {
    for (auto s : kAllSchemes) {
        INFO(scheme_label(s));
        CHECK_THROWS_AS(Verifier(config(s, {secret("", true, "${EMPTY}")})), std::invalid_argument);
    }
}

TEST_CASE("a config without the header names it needs is refused", "[verify]") {
    auto no_header = config(VerifyScheme::hmac_sha256);
    no_header.header.clear();
    CHECK_THROWS_AS(Verifier(no_header), std::invalid_argument);
    auto no_ts = config(VerifyScheme::hmac_sha256_timestamp);
    no_ts.timestamp_header.clear();
    CHECK_THROWS_AS(Verifier(no_ts), std::invalid_argument);
}

TEST_CASE("base64 encodes and decodes the standard alphabet", "[verify]") {
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("f") == "Zg==");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(base64_encode("foo") == "Zm9v");
    CHECK(base64_encode("foobar") == "Zm9vYmFy");
    CHECK(base64_encode(std::string("\xfb\xff\xbf", 3)) == "+/+/");
    CHECK(base64_decode("Zm9vYmFy") == std::optional<std::string>("foobar"));
    CHECK(base64_decode("Zg==") == std::optional<std::string>("f"));
    CHECK(base64_decode("Zg") == std::optional<std::string>("f"));  // padding optional
    CHECK(base64_decode("Zm8=") == std::optional<std::string>("fo"));
    CHECK(base64_decode("+/+/") == std::optional<std::string>(std::string("\xfb\xff\xbf", 3)));
    CHECK(base64_decode("") == std::optional<std::string>(""));
    for (const char* bad :
         {"Z", "Zg=", "Zm9=v", "Zm 9v", "Zm9v\n", "Zm-_", "====", "Zg===", "Zm9vY"}) {
        INFO("'" << bad << "'");
        CHECK_FALSE(base64_decode(bad).has_value());
    }
    std::string all;
    for (int i = 0; i < 256; ++i)
        all += static_cast<char>(i);
    CHECK(base64_decode(base64_encode(all)) == std::optional<std::string>(all));
}

TEST_CASE("failure names are the metric labels", "[verify]") {
    CHECK(std::string(failure_name(VerifyFailure::none)) == "none");
    CHECK(std::string(failure_name(VerifyFailure::missing_header)) == "missing_header");
    CHECK(std::string(failure_name(VerifyFailure::malformed_header)) == "malformed_header");
    CHECK(std::string(failure_name(VerifyFailure::bad_signature)) == "bad_signature");
    CHECK(std::string(failure_name(VerifyFailure::stale_timestamp)) == "stale_timestamp");
    CHECK(std::string(failure_name(VerifyFailure::future_timestamp)) == "future_timestamp");
    CHECK(std::string(failure_name(VerifyFailure::no_secret)) == "no_secret");
}

TEST_CASE("one verifier serves many threads at once", "[verify]") {
    for (auto s : kAllSchemes) {
        INFO(scheme_label(s));
        auto c = config(s, {secret("", false, "${MISSING}"), secret(secret_for(s))});
        const Verifier v(c);
        auto good = headers(sign_headers(c, kBody, kNow, "msg_1"));
        auto bad = headers(sign_headers(
            config(s, s == VerifyScheme::standard_webhooks ? "whsec_" + base64_encode("other key")
                                                           : "other"),
            kBody, kNow, "msg_1"));
        std::atomic<int> wrong{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&] {
                for (int i = 0; i < 500; ++i) {
                    if (v.verify(kBody, good.lookup(), kNow) != VerifyFailure::none) ++wrong;
                    if (v.verify(kBody, bad.lookup(), kNow) != VerifyFailure::bad_signature)
                        ++wrong;
                }
            });
        }
        for (auto& t : threads)
            t.join();
        CHECK(wrong == 0);
    }
}

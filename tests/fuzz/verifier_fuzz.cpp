// Fuzz target: Verifier::verify's header parsing (host/verify/Verifier.cpp), every scheme.
//
// The input is up to three header lines and a body:
//   SIGNATURE \n TIMESTAMP \n ID \n BODY
// SIGNATURE is x-clay-signature (hmac-sha256, hmac-sha256-timestamp), x-clay-webhook-auth (token)
// or webhook-signature (standard-webhooks); TIMESTAMP is x-clay-timestamp or webhook-timestamp;
// ID is webhook-id. A header whose line is missing (the input has fewer newlines) is absent; the
// body is what follows the last header line. Each input goes to one Verifier per scheme, built
// the way load_config would build it, at a fixed "now" (1700000000, the seeds' timestamp).
//
// On top of "no crash, no sanitizer report, no exception": the body signed with sign_headers()
// must verify, and must not once a byte of it changes (HMAC schemes); base64_decode must read
// back what base64_encode wrote.
#include "verify/Verifier.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace clayhook;

namespace {

const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
constexpr std::string_view kDeliveryId = "msg_fuzz";

Secret secret(std::string value) {
    Secret s;
    s.ref = "${CLAYHOOK_FUZZ_SECRET}";
    s.resolved = true;
    s.value = std::move(value);
    s.origin = "env CLAYHOOK_FUZZ_SECRET";
    return s;
}

Secret unresolved() {
    Secret s;
    s.ref = "${CLAYHOOK_FUZZ_UNSET}";
    s.error = "not resolved: environment variable CLAYHOOK_FUZZ_UNSET is not set";
    return s;
}

// The first secret of each is the one the seeds are signed with (and sign_headers() uses); the
// others stand for rotation: a key longer than an HMAC block, an unresolved reference.
VerifyConfig make_config(VerifyScheme scheme) {
    VerifyConfig c;
    c.scheme = scheme;
    c.tolerance = std::chrono::minutes(5);
    switch (scheme) {
        case VerifyScheme::hmac_sha256:
        case VerifyScheme::hmac_sha256_timestamp:
            c.header = "x-clay-signature";
            if (scheme == VerifyScheme::hmac_sha256_timestamp)
                c.timestamp_header = "x-clay-timestamp";
            c.secrets = {secret("fuzz-secret"),
                         secret(std::string(100, 'k') + " longer than a SHA-256 block"),
                         unresolved()};
            break;
        case VerifyScheme::token:
            c.header = "x-clay-webhook-auth";
            c.secrets = {secret("fuzz-token"), secret("fuzz-token-next"), unresolved()};
            break;
        case VerifyScheme::standard_webhooks:
            c.header = "webhook-signature";
            c.timestamp_header = "webhook-timestamp";
            // base64("fuzz-standard-webhooks-key"), with the prefix and bare.
            c.secrets = {secret("whsec_ZnV6ei1zdGFuZGFyZC13ZWJob29rcy1rZXk="),
                         secret("ZnV6ei1zdGFuZGFyZC13ZWJob29rcy1rZXktbmV4dA=="), unresolved()};
            break;
    }
    return c;
}

struct Subject {
    VerifyConfig config;
    Verifier verifier;
    explicit Subject(VerifyScheme s) : config(make_config(s)), verifier(config) {}
};

const std::vector<Subject>& subjects() {
    static const std::vector<Subject> all = [] {
        std::vector<Subject> v;
        for (auto s : {VerifyScheme::hmac_sha256, VerifyScheme::hmac_sha256_timestamp,
                       VerifyScheme::token, VerifyScheme::standard_webhooks})
            v.emplace_back(s);
        return v;
    }();
    return all;
}

[[noreturn]] void broken(const char* where, const std::string& what) {
    std::fprintf(stderr, "FUZZ CHECK FAILED: verifier (%s): %s\n", where, what.c_str());
    std::abort();
}

[[noreturn]] void broken(const Subject& s, const std::string& what) {
    // scheme_name() lives in ConfigLoader.cpp, which this target does not build.
    broken(("scheme #" + std::to_string(static_cast<int>(s.config.scheme))).c_str(), what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view rest(reinterpret_cast<const char*>(data), size);
    std::optional<std::string> slot[3];  // signature, timestamp, id
    for (auto& s : slot) {
        const size_t nl = rest.find('\n');
        if (nl == std::string_view::npos) break;
        s = std::string(rest.substr(0, nl));
        rest.remove_prefix(nl + 1);
    }
    const std::string_view body = rest;

    const HeaderLookup from_input = [&](std::string_view name) -> const std::string* {
        const int i = name == "x-clay-signature" || name == "x-clay-webhook-auth" ||
                              name == "webhook-signature"
                          ? 0
                      : name == "x-clay-timestamp" || name == "webhook-timestamp" ? 1
                      : name == "webhook-id"                                      ? 2
                                                                                  : -1;
        return i >= 0 && slot[i] ? &*slot[i] : nullptr;
    };

    for (const Subject& s : subjects()) {
        const VerifyFailure f = s.verifier.verify(body, from_input, kNow);
        if (std::string_view(failure_name(f)) == "unknown") broken(s, "verify() out of range");

        // What a sender would attach for this body: accepted, and refused for another body.
        const auto signed_headers = sign_headers(s.config, body, kNow, kDeliveryId);
        const HeaderLookup from_signer = [&](std::string_view name) -> const std::string* {
            for (const auto& [n, v] : signed_headers)
                if (n == name) return &v;
            return nullptr;
        };
        if (auto g = s.verifier.verify(body, from_signer, kNow); g != VerifyFailure::none)
            broken(s, std::string("a body signed by sign_headers() fails with ") + failure_name(g));
        if (!body.empty() && s.config.scheme != VerifyScheme::token) {
            std::string other(body);
            other.back() = static_cast<char>(other.back() ^ 1);
            if (auto g = s.verifier.verify(other, from_signer, kNow);
                g != VerifyFailure::bad_signature)
                broken(s, std::string("a changed body verifies as ") + failure_name(g));
        }
    }

    if (base64_decode(base64_encode(body)) != std::optional<std::string>(std::string(body)))
        broken("base64", "base64_decode(base64_encode(body)) is not the body");
    if (slot[0]) (void)base64_decode(*slot[0]);
    return 0;
}

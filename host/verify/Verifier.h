#pragma once

#include "config/Config.h"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clayhook {

// Why a request was refused. `none` means it was accepted.
enum class VerifyFailure {
    none,
    missing_header,    // a header the scheme needs is absent
    malformed_header,  // present, but holds nothing checkable (bad hex/base64, a
                       // timestamp that is not 1 to 19 digits)
    bad_signature,     // well formed, matches no secret
    stale_timestamp,   // signed timestamp older than now - tolerance
    future_timestamp,  // signed timestamp newer than now + tolerance, or past the
                       // year 5138 (1e11), whatever the tolerance
    no_secret,         // none of the source's secrets resolved
};

// "none", "missing_header", ...: stable, used as a metric label and in logs.
const char* failure_name(VerifyFailure f);

// Request headers as the HTTP layer sees them: a lookup by lower-case name
// returning nullptr when absent.
using HeaderLookup = std::function<const std::string*(std::string_view lower_name)>;

// Checks a request against one source's verification config. Built once per
// source at config time; immutable afterwards, so one instance may be shared by
// every request thread. Copies are cheap and share the precomputed keys.
class Verifier {
  public:
    // Precomputes per-secret state. Throws std::invalid_argument when the
    // config cannot be used (a resolved secret that is empty, a
    // standard-webhooks secret that is not base64, a missing header name);
    // the message names the secret by its reference, never by its value.
    // Unresolved secrets are skipped here and make verify() answer no_secret
    // when none is left.
    explicit Verifier(const VerifyConfig& config);

    // Data plane: never throws (beyond what `headers` itself throws). `now` is
    // injected for tests. Internal errors (OpenSSL out of memory) fail closed
    // as bad_signature.
    VerifyFailure verify(std::string_view raw_body, const HeaderLookup& headers,
                         std::chrono::system_clock::time_point now) const;

    size_t usable_secrets() const;  // resolved secrets, for reports

  private:
    struct Impl;
    std::shared_ptr<const Impl> impl_;
};

// Signing helpers, shared with the CLI (`clayhook sign`, `clayhook send`).
// These use OpenSSL's one-shot HMAC(), independent of the verifier's
// precomputed path, so the round-trip tests cross-check the two.
std::string hmac_sha256_hex(std::string_view key, std::string_view data);  // lower-case hex
std::string sha256_hex(std::string_view data);                             // lower-case hex
std::string hmac_sha256_base64(std::string_view key, std::string_view data);
std::string base64_encode(std::string_view bytes);  // standard alphabet, padded
// Standard alphabet; padding optional but must be right when present; no
// whitespace. nullopt when the text is not base64.
std::optional<std::string> base64_decode(std::string_view text);

// The headers a sender would attach for this config, signed with its first
// usable secret: for `clayhook sign`/`send` and tests. `delivery_id` is only
// used by standard-webhooks (webhook-id). Throws std::invalid_argument when no
// secret resolved or the secret is unusable (message without the value).
std::vector<std::pair<std::string, std::string>> sign_headers(
    const VerifyConfig& config, std::string_view body, std::chrono::system_clock::time_point now,
    std::string_view delivery_id);

}  // namespace clayhook

#pragma once

// A small client for the Clay API (docs: docs/contracts.md, "Clay
// API"), plus the one-shot HTTP exchange it is built on, which `clayhook
// send` reuses to post signed deliveries to a host.

#include <chrono>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clayhook {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
    int status = 0;
    std::string reason;
    HttpHeaders headers;
    std::string body;
    // The first header of that name (case-insensitive), or nullptr.
    const std::string* header(std::string_view name) const;
};

// No HTTP answer arrived at all: connection refused, name not resolved, TLS
// handshake or certificate refused, timeout. `url` says where we tried to go;
// `what()` says which of these it was.
class NetworkError : public std::runtime_error {
  public:
    NetworkError(std::string url, const std::string& reason);
    const std::string& url() const { return url_; }

  private:
    std::string url_;
};

// A URL we cannot even try (not http:// or https://, no host).
class BadUrlError : public std::invalid_argument {
  public:
    using std::invalid_argument::invalid_argument;
};

// $SSL_CERT_FILE when set, else the system bundle. https:// connections trust
// the system's CAs plus $SSL_CERT_FILE (added to them, like a plugin's
// ca_file: plugins/common/http_kit.hpp). Certificates and host names are
// always verified.
std::string ca_bundle_path();

// http_exchange's default cap on an answer's body: room for the admin API's
// largest answer (an event's body, up to 64 MiB, JSON-escaped).
inline constexpr std::size_t kHttpExchangeMaxBody = std::size_t{512} << 20;

// One request on a fresh connection (http:// or https://; the HTTP kit of
// plugins/common/http_kit.hpp): `timeout` for the connection and for each
// wait for the server, no redirects followed. Throws NetworkError (also for
// an answer longer than `max_body`) or BadUrlError; any HTTP status, 5xx
// included, is an answer.
HttpResponse http_exchange(const std::string& method, const std::string& url,
                           const HttpHeaders& headers, std::string_view body,
                           std::chrono::milliseconds timeout,
                           std::size_t max_body = kHttpExchangeMaxBody);

enum class ClayErrorKind {
    missing_key,   // CLAY_API_KEY unset or empty: nothing was sent
    bad_url,       // the API base URL is unusable: nothing was sent
    unauthorized,  // 401: the key was refused
    validation,    // 422: Clay listed what is wrong in details
    rate_limited,  // 429 again after the one retry, or a Retry-After too long to wait
    not_found,     // 404
    network,       // no answer (see NetworkError)
    http,          // any other non-2xx status
    bad_response,  // 2xx whose body is not what the contract says
};

// Everything that can go wrong talking to Clay. `error` and `details` are
// Clay's own words (`invalid_api_key`, `validation_error` and its list), ready
// to show; the API key never appears in any of these fields.
struct ClayApiError : std::runtime_error {
    ClayApiError(ClayErrorKind k, const std::string& message);

    ClayErrorKind kind = ClayErrorKind::http;
    int status = 0;                                   // 0 when no HTTP answer
    std::string url;                                  // the request's URL
    std::string error;                                // Clay's "error" field, when present
    std::vector<std::string> details;                 // Clay's "details", one line each
    std::optional<std::chrono::seconds> retry_after;  // on rate_limited
    std::string body;                                 // the raw answer, for `http`
};

struct ClayWebhook {
    std::string id;
    std::string url;
    std::string table_id;
    std::vector<std::string> events;
    std::string created_at;
    // Only in the answer to a registration: Clay shows it once. Never logged.
    std::string secret;
};

struct ClayApiOptions {
    // https://, or http:// to a loopback address only (a test's fake): the
    // API key never crosses a network in the clear.
    std::string base_url = "https://api.clay.com";
    std::string api_key;
    std::chrono::milliseconds timeout{10'000};  // to connect, and each wait for Clay
    // An answer's body past this is a bad_response, never read further.
    std::size_t max_response_bytes = std::size_t{1} << 20;  // 1 MiB
    // A 429 is retried once after its Retry-After (1 s when absent); a wait
    // longer than this is not attempted and is reported at once instead.
    std::chrono::seconds max_retry_wait{60};
    // Told before a 429 wait, so a command can say why it pauses.
    std::function<void(std::chrono::seconds wait, const std::string& url)> on_rate_limit_wait;

    // base_url from `api_url` when not empty, else $CLAY_API_URL, else the
    // default; api_key from $CLAY_API_KEY.
    static ClayApiOptions from_env(const std::string& api_url = "");
};

class ClayApi {
  public:
    // Throws ClayApiError (missing_key, bad_url) before any request is made.
    explicit ClayApi(ClayApiOptions options);

    const std::string& base_url() const { return options_.base_url; }

    // POST /v1/webhooks → 201 with the new webhook and its secret.
    ClayWebhook create_webhook(const std::string& url, const std::string& table_id,
                               const std::vector<std::string>& events);
    // GET /v1/webhooks. `raw`, when given, receives the answer's JSON text.
    std::vector<ClayWebhook> list_webhooks(std::string* raw = nullptr);
    // DELETE /v1/webhooks/{id} → 204.
    void delete_webhook(const std::string& id);
    // POST /v1/tables/{table_id}/rows/{row_id}/enrich → 202: re-runs an
    // enrichment column (the retry scheduler's call).
    void enrich_row(const std::string& table_id, const std::string& row_id,
                    const std::string& column);

    // One authorised request with the 429 policy applied; throws ClayApiError
    // for a network failure or any status outside `expected`.
    HttpResponse call(const std::string& method, const std::string& path, std::string_view body,
                      std::initializer_list<int> expected);

  private:
    ClayApiOptions options_;
};

// "5" or an HTTP date, as seconds from now (a date past is 0; anything past
// 999999 s is 999999 s); nullopt when unreadable. The kit's parser.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value);

}  // namespace clayhook

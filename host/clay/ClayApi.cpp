#include "clay/ClayApi.h"

#include <clayhook/json.hpp>

#include "http_kit.hpp"  // plugins/common: the one HTTP client, shared with the plugins

#include <Poco/Net/NetSSL.h>
#include <Poco/URI.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

namespace clayhook {

namespace http = clayhook_plugins::http;

namespace {

constexpr const char* kDefaultBaseUrl = "https://api.clay.com";
constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";
// What a 429 without Retry-After waits: long enough to leave a per-second
// window, short enough not to feel hung.
constexpr std::chrono::seconds kDefaultRetryWait{1};
// Retry-After as parse_retry_after reports it: anything longer is "too long"
// for every caller here (see max_retry_wait).
constexpr std::chrono::seconds kRetryAfterCap{999'999};

// One TLS client context for the process, built on the first https://
// request: the system's CAs plus $SSL_CERT_FILE when it names a file (added
// to them, as a plugin's ca_file is; see plugins/common/http_kit.hpp).
std::shared_ptr<const http::Tls> tls() {
    static std::once_flag once;
    static std::shared_ptr<const http::Tls> shared;
    std::call_once(once, [] {
        Poco::Net::initializeSSL();
        const char* env = std::getenv("SSL_CERT_FILE");
        std::error_code ec;
        const bool have = env && *env && std::filesystem::is_regular_file(env, ec);
        shared = std::make_shared<const http::Tls>(have ? std::string(env) : std::string());
    });
    return shared;
}

// One request through the kit: `url` split into its endpoint and its target
// (sent exactly as written: re-encoding would turn an escaped '/' inside an
// id back into a separator). Throws http::UrlError or http::Error.
HttpResponse exchange(const std::string& method, const std::string& url, const HttpHeaders& headers,
                      std::string_view body, std::chrono::milliseconds timeout,
                      std::size_t max_body, http::AllowHttp allow_http) {
    auto [endpoint, target] = http::Endpoint::split(url, allow_http);
    http::ClientOptions o;
    o.connect_timeout = timeout;
    o.read_timeout = timeout;
    o.max_response_bytes = max_body;
    o.max_retry_after = kRetryAfterCap;
    http::Client client(endpoint.https ? tls() : nullptr, o);
    http::Request req;
    req.method = method;
    req.path = target;
    req.headers = headers;
    req.body = std::string(body);
    http::Response r = client.send(endpoint, req);
    return HttpResponse{r.status, std::move(r.reason), std::move(r.headers), std::move(r.body)};
}

// Clay's error answer: {"error":"…","details":[…]}. Details are strings or
// objects ({"field":"url","message":"…"}); each becomes one readable line.
void read_error_body(const std::string& body, ClayApiError& e) {
    e.body = body;
    json::Value doc;
    try {
        doc = json::parse(body);
    } catch (const std::exception&) {
        return;  // not JSON: `body` is all there is
    }
    if (!doc.is_object()) return;
    e.error = doc.get_string("error", "");
    const json::Value* details = doc.find("details");
    if (details == nullptr) return;
    auto line = [](const json::Value& d) -> std::string {
        if (d.is_string()) return d.as_string();
        if (d.is_object()) {
            std::string field = d.get_string("field", d.get_string("path", ""));
            std::string message = d.get_string("message", d.get_string("msg", ""));
            if (!message.empty()) return field.empty() ? message : field + ": " + message;
        }
        return json::dump(d);
    };
    if (details->is_array()) {
        for (const auto& d : details->items())
            e.details.push_back(line(d));
    } else {
        e.details.push_back(line(*details));
    }
}

std::vector<std::string> string_list(const json::Value* v) {
    std::vector<std::string> out;
    if (v == nullptr || !v->is_array()) return out;
    for (const auto& item : v->items())
        if (item.is_string()) out.push_back(item.as_string());
    return out;
}

ClayWebhook webhook_from(const json::Value& v) {
    ClayWebhook w;
    w.id = v.get_string("id", "");
    w.url = v.get_string("url", "");
    w.table_id = v.get_string("table_id", "");
    w.events = string_list(v.find("events"));
    w.created_at = v.get_string("created_at", "");
    w.secret = v.get_string("secret", "");
    return w;
}

// A path segment from caller data (a webhook or row id): escaped, so that an
// id holding `/` or `?` cannot address another resource.
std::string segment(const std::string& s) {
    std::string out;
    Poco::URI::encode(s, "/?#%&=+ ", out);
    return out;
}

json::Value parse_answer(const HttpResponse& r, const std::string& url) {
    try {
        return json::parse(r.body);
    } catch (const std::exception& e) {
        ClayApiError err(ClayErrorKind::bad_response,
                         "Clay answered " + std::to_string(r.status) + " from " + url +
                             " with a body that is not JSON: " + e.what());
        err.status = r.status;
        err.url = url;
        err.body = r.body;
        throw err;
    }
}

}  // namespace

const std::string* HttpResponse::header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (http::detail::iequals(k, name)) return &v;
    return nullptr;
}

NetworkError::NetworkError(std::string url, const std::string& reason)
    : std::runtime_error(reason), url_(std::move(url)) {}

ClayApiError::ClayApiError(ClayErrorKind k, const std::string& message)
    : std::runtime_error(message), kind(k) {}

std::string ca_bundle_path() {
    const char* env = std::getenv("SSL_CERT_FILE");
    return env && *env ? env : kSystemCaBundle;
}

HttpResponse http_exchange(const std::string& method, const std::string& url,
                           const HttpHeaders& headers, std::string_view body,
                           std::chrono::milliseconds timeout, std::size_t max_body) {
    try {
        return exchange(method, url, headers, body, timeout, max_body, http::AllowHttp::any);
    } catch (const http::UrlError& e) {
        throw BadUrlError("the URL '" + url + "' " + e.what());
    } catch (const http::Error& e) {
        throw NetworkError(url, e.what());
    }
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value) {
    return http::parse_retry_after(value, kRetryAfterCap);
}

ClayApiOptions ClayApiOptions::from_env(const std::string& api_url) {
    ClayApiOptions o;
    const char* env_url = std::getenv("CLAY_API_URL");
    if (!api_url.empty())
        o.base_url = api_url;
    else if (env_url && *env_url)
        o.base_url = env_url;
    else
        o.base_url = kDefaultBaseUrl;
    const char* key = std::getenv("CLAY_API_KEY");
    o.api_key = key ? key : "";
    return o;
}

ClayApi::ClayApi(ClayApiOptions options) : options_(std::move(options)) {
    while (!options_.base_url.empty() && options_.base_url.back() == '/')
        options_.base_url.pop_back();
    if (options_.api_key.empty())
        throw ClayApiError(ClayErrorKind::missing_key,
                           "CLAY_API_KEY is not set: export your Clay API key as CLAY_API_KEY");
    // https:// only, but for a loopback address (a test's fake): the API key
    // never crosses a network in the clear.
    try {
        http::Endpoint::parse(options_.base_url, http::AllowHttp::loopback);
    } catch (const http::UrlError& e) {
        throw ClayApiError(ClayErrorKind::bad_url, "the Clay API URL '" + options_.base_url + "' " +
                                                       e.what() +
                                                       " (from --api-url or CLAY_API_URL)");
    }
}

HttpResponse ClayApi::call(const std::string& method, const std::string& path,
                           std::string_view body, std::initializer_list<int> expected) {
    const std::string url = options_.base_url + path;
    HttpHeaders headers{{"Authorization", "Bearer " + options_.api_key},
                        {"Accept", "application/json"},
                        {"User-Agent", "clayhook"}};
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");

    HttpResponse r;
    for (int attempt = 0;; ++attempt) {
        try {
            r = exchange(method, url, headers, body, options_.timeout, options_.max_response_bytes,
                         http::AllowHttp::loopback);
        } catch (const http::UrlError& e) {
            ClayApiError err(ClayErrorKind::bad_url, "the Clay API URL " + url + " " + e.what());
            err.url = url;
            throw err;
        } catch (const http::Error& e) {
            // An answer past the cap is no answer the contract describes.
            const bool too_large = e.kind() == http::ErrorKind::too_large;
            ClayApiError err(too_large ? ClayErrorKind::bad_response : ClayErrorKind::network,
                             too_large ? "Clay's answer to " + method + " " + url + ": " + e.what()
                                       : "cannot reach Clay at " + url + ": " + e.what());
            err.status = e.status();
            err.url = url;
            throw err;
        }
        if (r.status != 429) break;

        const std::string* header = r.header("Retry-After");
        auto wait = header ? parse_retry_after(*header) : std::nullopt;
        std::chrono::seconds delay = wait.value_or(kDefaultRetryWait);
        // A 429 means the request was not processed, so sending it again,
        // even a POST, cannot register twice. Once only: a client that
        // keeps knocking makes the limit worse for the whole workspace.
        if (attempt == 0 && delay <= options_.max_retry_wait) {
            if (options_.on_rate_limit_wait) options_.on_rate_limit_wait(delay, url);
            std::this_thread::sleep_for(delay);
            continue;
        }
        ClayApiError err(ClayErrorKind::rate_limited,
                         attempt == 0 ? "Clay is rate limiting (429) and asks to wait " +
                                            std::to_string(delay.count()) + " s, longer than the " +
                                            std::to_string(options_.max_retry_wait.count()) +
                                            " s this command waits; try again later"
                                      : std::string("Clay is still rate limiting (429) after "
                                                    "waiting and retrying once; try again later"));
        err.status = 429;
        err.url = url;
        err.retry_after = delay;
        read_error_body(r.body, err);
        throw err;
    }

    if (std::find(expected.begin(), expected.end(), r.status) != expected.end()) return r;

    ClayApiError parsed(ClayErrorKind::http, "");
    read_error_body(r.body, parsed);
    // "422 validation_error": the status with Clay's own error code.
    const std::string code =
        std::to_string(r.status) + (parsed.error.empty() ? "" : " " + parsed.error);
    ClayErrorKind kind = ClayErrorKind::http;
    std::string message;
    switch (r.status) {
        case 401:
            kind = ClayErrorKind::unauthorized;
            message = "Clay refused the API key (" + code + "): check CLAY_API_KEY";
            break;
        case 404:
            kind = ClayErrorKind::not_found;
            message = "Clay has no such resource (" + code + "): " + method + " " + url;
            break;
        case 422:
            kind = ClayErrorKind::validation;
            message = "Clay refused the request (" + code + ")";
            break;
        default:
            message = "Clay answered " + code + " to " + method + " " + url;
            break;
    }
    ClayApiError err(kind, message);
    err.status = r.status;
    err.url = url;
    err.error = parsed.error;
    err.details = std::move(parsed.details);
    err.body = r.body;
    throw err;
}

ClayWebhook ClayApi::create_webhook(const std::string& url, const std::string& table_id,
                                    const std::vector<std::string>& events) {
    auto ev = json::Value::array();
    for (const auto& e : events)
        ev.push_back(e);
    auto body = json::Value::object();
    body.set("url", url);
    body.set("events", std::move(ev));
    body.set("table_id", table_id);
    HttpResponse r = call("POST", "/v1/webhooks", json::dump(body), {200, 201});
    json::Value doc = parse_answer(r, options_.base_url + "/v1/webhooks");
    ClayWebhook w = doc.is_object() ? webhook_from(doc) : ClayWebhook{};
    if (w.id.empty()) {
        ClayApiError err(ClayErrorKind::bad_response,
                         "Clay answered " + std::to_string(r.status) +
                             " to the registration but the answer carries no webhook id");
        err.status = r.status;
        throw err;
    }
    return w;
}

std::vector<ClayWebhook> ClayApi::list_webhooks(std::string* raw) {
    HttpResponse r = call("GET", "/v1/webhooks", {}, {200});
    json::Value doc = parse_answer(r, options_.base_url + "/v1/webhooks");
    const json::Value* data = doc.is_object() ? doc.find("data") : nullptr;
    if (data == nullptr || !data->is_array()) {
        ClayApiError err(ClayErrorKind::bad_response, "Clay's webhook list has no \"data\" array");
        err.status = r.status;
        throw err;
    }
    std::vector<ClayWebhook> out;
    for (const auto& item : data->items())
        if (item.is_object()) out.push_back(webhook_from(item));
    if (raw != nullptr) *raw = r.body;
    return out;
}

void ClayApi::delete_webhook(const std::string& id) {
    call("DELETE", "/v1/webhooks/" + segment(id), {}, {200, 202, 204});
}

void ClayApi::enrich_row(const std::string& table_id, const std::string& row_id,
                         const std::string& column) {
    auto body = json::Value::object();
    body.set("column", column);
    call("POST", "/v1/tables/" + segment(table_id) + "/rows/" + segment(row_id) + "/enrich",
         json::dump(body), {200, 202});
}

}  // namespace clayhook

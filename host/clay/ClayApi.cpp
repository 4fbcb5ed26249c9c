#include "clay/ClayApi.h"

#include <clayhook/json.hpp>

#include <Poco/DateTime.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/NetSSL.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/StreamCopier.h>
#include <Poco/Timestamp.h>
#include <Poco/URI.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <istream>
#include <memory>
#include <mutex>
#include <ostream>
#include <thread>

namespace clayhook {

namespace {

constexpr const char* kDefaultBaseUrl = "https://api.clay.com";
constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";
// What a 429 without Retry-After waits: long enough to leave a per-second
// window, short enough not to feel hung.
constexpr std::chrono::seconds kDefaultRetryWait{1};

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// One TLS client context for the process: building it reads the CA bundle,
// and a command makes at most a handful of requests.
Poco::Net::Context::Ptr tls_context() {
    static std::once_flag once;
    static Poco::Net::Context::Ptr context;
    std::call_once(once, [] {
        Poco::Net::initializeSSL();
        std::string ca = ca_bundle_path();
        // VERIFY_STRICT: the chain must lead to a trusted CA (no
        // invalid-certificate handler is installed, so a failure is never
        // waved through), and the host name is checked even for localhost,
        // which Poco skips under VERIFY_RELAXED.
        bool have_bundle = std::filesystem::exists(ca);
        context = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE,
                                         have_bundle ? ca : std::string(),
                                         Poco::Net::Context::VERIFY_STRICT, 9,
                                         /*loadDefaultCAs=*/!have_bundle);
        context->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
        // Poco's default, set anyway: without the host-name check any
        // certificate from a trusted CA, for any name, would be taken.
        context->enableExtendedCertificateVerification(true);
    });
    return context;
}

// Poco reports each failure as its own exception type; say which in words an
// operator can act on.
[[noreturn]] void rethrow_network(const std::string& url) {
    try {
        throw;
    } catch (const Poco::Net::ConnectionRefusedException&) {
        throw NetworkError(url, "connection refused");
    } catch (const Poco::Net::DNSException& e) {
        throw NetworkError(url, "host name not resolved (" + e.message() + ")");
    } catch (const Poco::TimeoutException&) {
        throw NetworkError(url, "timed out");
    } catch (const Poco::Net::CertificateValidationException& e) {
        throw NetworkError(url, "TLS certificate refused: " + e.message());
    } catch (const Poco::Net::SSLException& e) {
        throw NetworkError(url, "TLS failed: " + e.message());
    } catch (const Poco::Net::ConnectionResetException&) {
        throw NetworkError(url, "connection reset by the server");
    } catch (const Poco::Net::NoMessageException&) {
        throw NetworkError(url, "the server closed the connection without answering");
    } catch (const Poco::Exception& e) {
        throw NetworkError(url, e.displayText());
    }
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
        if (iequals(k, name)) return &v;
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
                           std::chrono::milliseconds timeout) {
    Poco::URI uri;
    try {
        uri = Poco::URI(url);
    } catch (const Poco::Exception& e) {
        throw BadUrlError("not a URL: " + url + " (" + e.message() + ")");
    }
    const std::string& scheme = uri.getScheme();
    if ((scheme != "http" && scheme != "https") || uri.getHost().empty())
        throw BadUrlError("not an http:// or https:// URL: " + url);

    Poco::Timespan span(std::chrono::duration_cast<std::chrono::microseconds>(timeout).count());
    HttpResponse out;
    try {
        std::unique_ptr<Poco::Net::HTTPClientSession> session;
        if (scheme == "https")
            session = std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(),
                                                                      tls_context());
        else
            session = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
        session->setTimeout(span);
        session->setKeepAlive(false);

        // The request target exactly as written in `url`: Poco::URI decodes
        // the path, and re-encoding it would turn an escaped '/' inside an id
        // back into a separator.
        std::string target = "/";
        if (auto authority = url.find("://"); authority != std::string::npos) {
            auto start = url.find_first_of("/?", authority + 3);
            if (start != std::string::npos) target = url.substr(start, url.find('#') - start);
            if (target.front() == '?') target.insert(0, "/");
        }
        Poco::Net::HTTPRequest req(method, target, Poco::Net::HTTPMessage::HTTP_1_1);
        for (const auto& [k, v] : headers)
            req.set(k, v);
        if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")
            req.setContentLength(static_cast<std::streamsize>(body.size()));
        std::ostream& os = session->sendRequest(req);
        os.write(body.data(), static_cast<std::streamsize>(body.size()));
        os.flush();

        Poco::Net::HTTPResponse resp;
        std::istream& is = session->receiveResponse(resp);
        Poco::StreamCopier::copyToString(is, out.body);
        out.status = static_cast<int>(resp.getStatus());
        out.reason = resp.getReason();
        for (const auto& [k, v] : resp)
            out.headers.emplace_back(k, v);
    } catch (...) {
        rethrow_network(url);
    }
    return out;
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
        value.remove_suffix(1);
    if (value.empty()) return std::nullopt;
    if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        // Anything past a day is as good as "too long"; clamp before converting.
        if (value.size() > 6) return std::chrono::seconds(999'999);
        return std::chrono::seconds(std::stol(std::string(value)));
    }
    Poco::DateTime when;
    int tz = 0;
    if (!Poco::DateTimeParser::tryParse(std::string(value), when, tz)) return std::nullopt;
    auto delta = (when.timestamp() - Poco::Timestamp()) / Poco::Timestamp::resolution();
    return std::chrono::seconds(std::max<Poco::Timestamp::TimeDiff>(delta, 0));
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
    Poco::URI uri;
    try {
        uri = Poco::URI(options_.base_url);
    } catch (const Poco::Exception&) {
    }
    if ((uri.getScheme() != "http" && uri.getScheme() != "https") || uri.getHost().empty())
        throw ClayApiError(ClayErrorKind::bad_url,
                           "the Clay API URL '" + options_.base_url +
                               "' is not an http:// or https:// URL (from --api-url or "
                               "CLAY_API_URL)");
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
            r = http_exchange(method, url, headers, body, options_.timeout);
        } catch (const NetworkError& e) {
            ClayApiError err(ClayErrorKind::network,
                             "cannot reach Clay at " + e.url() + ": " + e.what());
            err.url = url;
            throw err;
        } catch (const BadUrlError& e) {
            ClayApiError err(ClayErrorKind::bad_url, e.what());
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

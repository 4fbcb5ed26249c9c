// One small HTTP client for the bundled plugins (salesforce-push,
// hubspot-push, retry-scheduler) and the host's Clay client
// (host/clay/ClayApi.cpp). Header-only; needs Poco (Foundation, Net, NetSSL)
// and nothing of the host, so a plugin built only against plugin-api/ can use
// it.
//
// What every caller gets the same way:
//   - Endpoint: a base URL parsed and checked once: https:// unless http:// is
//     explicitly allowed (AllowHttp::loopback: only to 127.0.0.0/8, ::1 and
//     localhost, for tests' fake servers; AllowHttp::any), a host, a port and
//     a path prefix kept exactly as written (an escaped '/' stays escaped).
//   - TLS: certificates and host names are always verified (VERIFY_STRICT,
//     TLS 1.2 at least). `ca_file` (PEM) is ADDED to the system's CAs
//     (OpenSSL's default paths, which $SSL_CERT_FILE and $SSL_CERT_DIR can
//     point elsewhere), never a replacement for them: an operator with a
//     private CA names it, and public endpoints keep working. This is what
//     export-downloader does.
//   - A bounded answer: at most max_response_bytes of body (default 1 MiB).
//     A longer answer is an Error (too_large) naming the cap; a Content-Length
//     past the cap is refused before any of the body is read, and otherwise
//     reading stops at the first byte past the cap.
//   - Timeouts: connect_timeout for the TCP connection and the TLS handshake,
//     read_timeout for each wait for the server (sending, then every read).
//   - Redirects only when asked (max_redirects, default 0: a 3xx is an answer
//     like any other). When followed, each hop is checked like the endpoint,
//     never https -> http, and Authorization is not carried to another origin.
//   - Retry-After read once (delta-seconds or an HTTP-date), capped.
//   - Errors classified: no answer (network, timeout, TLS) is retryable; an
//     answer of 429 or 5xx (and 408) is retryable, with its Retry-After; any
//     other 4xx (and a 3xx not followed) is not; a too-large answer is not.
#pragma once

#include <Poco/DateTime.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SecureStreamSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Timespan.h>
#include <Poco/Timestamp.h>
#include <Poco/URI.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <istream>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clayhook_plugins::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

inline constexpr size_t kDefaultMaxResponseBytes = size_t{1} << 20;  // 1 MiB
inline constexpr std::chrono::seconds kDefaultMaxRetryAfter{24 * 3600};

namespace detail {

inline bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

inline std::string_view trim(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
        v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
        v.remove_suffix(1);
    return v;
}

}  // namespace detail

// ---- Retry-After ------------------------------------------------------------

// "120" or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT", or the RFC 850 and
// asctime forms), as a wait from now: a date in the past is 0, anything past
// `cap` is `cap`. nullopt when it is neither form.
inline std::optional<std::chrono::seconds> parse_retry_after(
    std::string_view value, std::chrono::seconds cap = kDefaultMaxRetryAfter) {
    value = detail::trim(value);
    if (value.empty()) return std::nullopt;
    if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        if (value.size() > 12) return cap;  // past any cap worth having: no overflow
        int64_t n = 0;
        for (char c : value)
            n = n * 10 + (c - '0');
        return std::min(std::chrono::seconds(n), cap);
    }
    // An HTTP-date starts with the day's name; Poco tells the three forms apart.
    if (!std::isalpha(static_cast<unsigned char>(value.front()))) return std::nullopt;
    Poco::DateTime when;
    int tzd = 0;
    if (!Poco::DateTimeParser::tryParse(std::string(value), when, tzd)) return std::nullopt;
    when.makeUTC(tzd);
    const Poco::Timestamp::TimeDiff us = when.timestamp() - Poco::Timestamp();
    if (us <= 0) return std::chrono::seconds(0);
    // Round up: "wait until 12:00:01" is not met at 12:00:00.4.
    const auto s = (us + Poco::Timestamp::resolution() - 1) / Poco::Timestamp::resolution();
    return std::min(std::chrono::seconds(s), cap);
}

// ---- Endpoint -----------------------------------------------------------------

// Whether http:// (no TLS) may be used.
enum class AllowHttp {
    no,        // https:// only
    loopback,  // http:// too, but only to 127.0.0.0/8, ::1 or localhost (tests' fakes)
    any,       // http:// anywhere
};

// A URL that cannot be used. what() reads after the URL's name:
// "config: 'base_url' " + what() -> "config: 'base_url' is not an https:// URL".
class UrlError : public std::invalid_argument {
  public:
    using std::invalid_argument::invalid_argument;
};

struct Endpoint {
    bool https = true;
    std::string host;  // without the brackets of an IPv6 address
    uint16_t port = 443;
    std::string prefix;  // the path as written (not decoded), no trailing '/'

    // A base URL: scheme, host, optional port and path, no query or fragment.
    static Endpoint parse(std::string_view base_url, AllowHttp allow_http = AllowHttp::no) {
        auto [ep, rest] = split_url(base_url, allow_http);
        if (rest.find_first_of("?#") != std::string::npos)
            throw UrlError("has a query or a fragment; a base URL is scheme://host[:port][/path]");
        ep.prefix = rest;
        while (!ep.prefix.empty() && ep.prefix.back() == '/')
            ep.prefix.pop_back();
        return ep;
    }

    // A full URL: its endpoint (no prefix) and the request target exactly as
    // written (path and query, "/" when there is none; the fragment dropped).
    static std::pair<Endpoint, std::string> split(std::string_view url,
                                                  AllowHttp allow_http = AllowHttp::no) {
        auto [ep, rest] = split_url(url, allow_http);
        if (auto hash = rest.find('#'); hash != std::string::npos) rest.resize(hash);
        if (rest.empty() || rest.front() != '/') rest.insert(0, "/");
        return {std::move(ep), std::move(rest)};
    }

    bool loopback() const {
        if (detail::iequals(host, "localhost")) return true;
        Poco::Net::IPAddress ip;
        return Poco::Net::IPAddress::tryParse(host, ip) && ip.isLoopback();
    }

    // "https://host:443" (an IPv6 host in brackets).
    std::string origin() const {
        const bool v6 = host.find(':') != std::string::npos;
        return std::string(https ? "https://" : "http://") + (v6 ? "[" + host + "]" : host) + ":" +
               std::to_string(port);
    }
    // The URL of a request target under this endpoint (for messages).
    std::string url(std::string_view path = "") const {
        return origin() + prefix + std::string(path);
    }

  private:
    // scheme://authority, checked, and what follows the authority as written.
    static std::pair<Endpoint, std::string> split_url(std::string_view url, AllowHttp allow_http) {
        const std::string_view want = allow_http == AllowHttp::no ? "is not an https:// URL"
                                                                  : "is not an http:// or "
                                                                    "https:// URL";
        const size_t sep = url.find("://");
        if (sep == std::string_view::npos) throw UrlError(std::string(want));
        std::string scheme(url.substr(0, sep));
        for (auto& c : scheme)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (scheme != "https" && scheme != "http") throw UrlError(std::string(want));
        std::string_view rest = url.substr(sep + 3);
        const size_t end = std::min(rest.find_first_of("/?#"), rest.size());
        const std::string authority(rest.substr(0, end));
        Endpoint ep;
        ep.https = scheme == "https";
        try {
            Poco::URI uri(scheme + "://" + authority);
            ep.host = uri.getHost();
            ep.port = uri.getPort();
        } catch (const Poco::Exception& e) {
            throw UrlError("is not a URL (" + e.message() + ")");
        }
        if (ep.host.empty()) throw UrlError("has no host");
        if (!ep.https) {
            if (allow_http == AllowHttp::no)
                throw UrlError("is http:// (no TLS): an https:// URL is required");
            if (allow_http == AllowHttp::loopback && !ep.loopback())
                throw UrlError(
                    "is http:// (no TLS) to a host that is not loopback: https:// is required "
                    "(http:// is only for 127.0.0.1, ::1 and localhost)");
        }
        return {std::move(ep), std::string(rest.substr(end))};
    }
};

// ---- TLS ----------------------------------------------------------------------

// The client side of TLS, built once and shared by requests: the system's CAs
// plus `ca_file` when given (see the top of this file), certificate chain and
// host name always verified. Throws std::invalid_argument when ca_file is not
// a file of PEM certificates ("ca_file /x: not a file").
class Tls {
  public:
    explicit Tls(std::string ca_file = "") : ca_file_(std::move(ca_file)) {
        if (!ca_file_.empty()) {
            std::error_code ec;
            if (!std::filesystem::is_regular_file(ca_file_, ec))
                throw std::invalid_argument("ca_file " + ca_file_ +
                                            ": not a file (a PEM file of CA certificates)");
        }
        Poco::Net::Context::Params params;
        params.caLocation = ca_file_;  // in addition to the system's CAs:
        params.loadDefaultCAs = true;
        // VERIFY_STRICT: the chain must lead to a trusted CA (no
        // invalid-certificate handler is installed, so a failure is never
        // waved through), and the host name is checked even for localhost.
        params.verificationMode = Poco::Net::Context::VERIFY_STRICT;
        params.verificationDepth = 9;
        try {
            context_ = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
            context_->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
            context_->enableExtendedCertificateVerification(true);
        } catch (const Poco::Exception& e) {
            throw std::invalid_argument((ca_file_.empty()
                                             ? std::string("cannot set up TLS")
                                             : "ca_file " + ca_file_ + ": cannot be used") +
                                        ": " + e.displayText());
        }
    }
    const std::string& ca_file() const { return ca_file_; }
    Poco::Net::Context::Ptr context() const { return context_; }

  private:
    std::string ca_file_;
    Poco::Net::Context::Ptr context_;
};

// ---- requests, answers, errors -------------------------------------------------

struct Request {
    std::string method = "GET";
    std::string path = "/";  // after the endpoint's prefix, with any query, as sent
    Headers headers;
    std::string body;
};

struct Response {
    int status = 0;
    std::string reason;
    Headers headers;
    std::string body;
    std::string url;  // what answered (the last hop when redirects were followed)
    // Retry-After, read and capped (ClientOptions::max_retry_after); nullopt
    // when absent or unreadable.
    std::optional<std::chrono::seconds> retry_after;

    // The first header of that name (case-insensitive), or nullptr.
    const std::string* header(std::string_view name) const {
        for (const auto& [k, v] : headers)
            if (detail::iequals(k, name)) return &v;
        return nullptr;
    }
};

enum class ErrorKind {
    network,    // no answer: refused, reset, name not resolved, closed, cut short
    timeout,    // no answer within connect_timeout / read_timeout
    tls,        // the TLS handshake failed or the certificate was refused
    too_large,  // the answer's body is longer than max_response_bytes
    redirect,   // a redirect that may not be followed (too many, a downgrade, a bad URL)
};

// Why there is no (usable) answer. what() is the reason alone ("connection
// refused", "timed out", "TLS certificate refused: ..."); url() where it was.
class Error : public std::runtime_error {
  public:
    Error(ErrorKind kind, std::string url, const std::string& reason, int status = 0)
        : std::runtime_error(reason), kind_(kind), url_(std::move(url)), status_(status) {}
    ErrorKind kind() const { return kind_; }
    const std::string& url() const { return url_; }
    int status() const { return status_; }  // too_large/redirect: the answer's status
    // Trying again later can help: nothing (or not all of it) came back.
    bool retryable() const {
        return kind_ == ErrorKind::network || kind_ == ErrorKind::timeout ||
               kind_ == ErrorKind::tls;
    }

  private:
    ErrorKind kind_;
    std::string url_;
    int status_;
};

// What to do about an answer or an error, in general: each caller's own API
// logic (auth refresh, per-record results) comes first.
struct Verdict {
    enum Kind { ok, retry, fail } kind = ok;
    std::optional<std::chrono::seconds> retry_after;  // with retry, when the server said
};

inline Verdict classify(int status, std::optional<std::chrono::seconds> retry_after = {}) {
    if (status >= 200 && status <= 299) return {Verdict::ok, {}};
    if (status == 429 || status == 408 || (status >= 500 && status <= 599))
        return {Verdict::retry, retry_after};
    return {Verdict::fail, {}};
}
inline Verdict classify(const Response& r) {
    return classify(r.status, r.retry_after);
}
inline Verdict classify(const Error& e) {
    return {e.retryable() ? Verdict::retry : Verdict::fail, {}};
}

struct ClientOptions {
    std::chrono::milliseconds connect_timeout{10'000};  // TCP connect and TLS handshake
    std::chrono::milliseconds read_timeout{30'000};     // each wait to send or to read
    size_t max_response_bytes = kDefaultMaxResponseBytes;
    int max_redirects = 0;                 // 0: a 3xx is returned as it is
    AllowHttp allow_http = AllowHttp::no;  // where a followed redirect may lead
    std::chrono::seconds max_retry_after = kDefaultMaxRetryAfter;
};

class Client {
  public:
    // `tls` may be null for a client that only speaks http:// (an https://
    // request, or a redirect to one, is then an Error).
    Client(std::shared_ptr<const Tls> tls, ClientOptions options = {})
        : tls_(std::move(tls)), options_(options) {}
    // A client with its own TLS context; ca_file as for Tls.
    explicit Client(const std::string& ca_file, ClientOptions options = {})
        : Client(std::make_shared<const Tls>(ca_file), options) {}

    const ClientOptions& options() const { return options_; }

    // One request on a fresh connection to `ep` (prefix + request.path). Any
    // HTTP status is an answer; throws Error when there is none, or when it
    // is larger than max_response_bytes.
    Response send(const Endpoint& ep, const Request& request) const {
        Endpoint at = ep;
        std::string target = ep.prefix + request.path;
        if (target.empty() || target.front() != '/') target.insert(0, "/");
        std::string method = request.method;
        Headers headers = request.headers;
        std::string body = request.body;
        for (int hop = 0;; ++hop) {
            Response r = exchange(at, target, method, headers, body);
            const bool redirect = r.status == 301 || r.status == 302 || r.status == 303 ||
                                  r.status == 307 || r.status == 308;
            const std::string* location = r.header("Location");
            if (options_.max_redirects <= 0 || !redirect || location == nullptr ||
                detail::trim(*location).empty())
                return r;
            if (hop >= options_.max_redirects)
                throw Error(ErrorKind::redirect, r.url,
                            "more than " + std::to_string(options_.max_redirects) +
                                " redirect(s); the last to " + std::string(*location),
                            r.status);
            std::pair<Endpoint, std::string> next;
            try {
                next = Endpoint::split(resolve(at, target, std::string(detail::trim(*location))),
                                       options_.allow_http);
            } catch (const UrlError& e) {
                throw Error(ErrorKind::redirect, r.url,
                            "the redirect to '" + *location + "' " + e.what(), r.status);
            }
            if (at.https && !next.first.https)
                throw Error(ErrorKind::redirect, r.url,
                            "the redirect to " + next.first.url(next.second) +
                                " downgrades https:// to http://",
                            r.status);
            if (next.first.origin() != at.origin())
                std::erase_if(headers, [](const auto& h) {
                    return detail::iequals(h.first, "Authorization") ||
                           detail::iequals(h.first, "Cookie");
                });
            if ((r.status == 303 && method != "HEAD") ||
                ((r.status == 301 || r.status == 302) && method == "POST")) {
                method = "GET";
                body.clear();
                std::erase_if(headers, [](const auto& h) {
                    return detail::iequals(h.first, "Content-Type");
                });
            }
            at = std::move(next.first);
            target = std::move(next.second);
        }
    }

  private:
    // A Location against the URL it came from: absolute, scheme-relative,
    // absolute-path or relative-path.
    static std::string resolve(const Endpoint& at, const std::string& target,
                               const std::string& location) {
        if (location.find("://") != std::string::npos &&
            location.find("://") < location.find_first_of("/?#"))
            return location;
        if (location.rfind("//", 0) == 0) return (at.https ? "https:" : "http:") + location;
        if (location.front() == '/') return at.origin() + location;
        std::string base = target.substr(0, target.find_first_of("?#"));
        base.resize(base.rfind('/') + 1);
        return at.origin() + base + location;
    }

    Response exchange(const Endpoint& at, const std::string& target, const std::string& method,
                      const Headers& headers, const std::string& body) const {
        Response out;
        out.url = at.origin() + target;
        const size_t cap = options_.max_response_bytes;
        try {
            if (at.https && !tls_)
                throw Error(ErrorKind::tls, out.url, "no TLS set up for an https:// URL");
            // The connection (and the TLS handshake) made here, each within
            // connect_timeout; Poco's own handshake can take several times
            // its timeouts when the server never answers it.
            Poco::Net::StreamSocket tcp;
            tcp.connect(Poco::Net::SocketAddress(at.host, at.port), span(options_.connect_timeout));
            Poco::Net::StreamSocket socket = tcp;
            if (at.https)
                socket = handshake(tcp, at.host, tls_->context(), options_.connect_timeout);
            socket.setReceiveTimeout(span(options_.read_timeout));
            socket.setSendTimeout(span(options_.read_timeout));
            socket.setNoDelay(true);
            // A session over the connected socket: it never connects again.
            auto session = std::make_unique<Poco::Net::HTTPClientSession>(socket);
            session->setKeepAlive(false);

            Poco::Net::HTTPRequest req(method, target, Poco::Net::HTTPMessage::HTTP_1_1);
            req.setHost(at.host, at.port);
            for (const auto& [k, v] : headers)
                req.set(k, v);
            if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")
                req.setContentLength64(static_cast<Poco::Int64>(body.size()));
            std::ostream& os = session->sendRequest(req);
            os.write(body.data(), static_cast<std::streamsize>(body.size()));
            os.flush();

            Poco::Net::HTTPResponse resp;
            std::istream& in = session->receiveResponse(resp);
            in.exceptions(std::ios::badbit);  // a failed read throws, not a short body
            out.status = static_cast<int>(resp.getStatus());
            out.reason = resp.getReason();
            for (const auto& [k, v] : resp)
                out.headers.emplace_back(k, v);
            if (const std::string* ra = out.header("Retry-After"))
                out.retry_after = parse_retry_after(*ra, options_.max_retry_after);

            const bool has_body =
                method != "HEAD" && out.status >= 200 && out.status != 204 && out.status != 304;
            const Poco::Int64 length = resp.getContentLength64();
            const bool known_length =
                has_body && length != Poco::Net::HTTPMessage::UNKNOWN_CONTENT_LENGTH;
            if (known_length && static_cast<uint64_t>(length) > cap)
                throw Error(ErrorKind::too_large, out.url,
                            "the answer (HTTP " + std::to_string(out.status) + ") is " +
                                std::to_string(length) + " bytes, more than the response cap of " +
                                std::to_string(cap) + " bytes",
                            out.status);
            if (known_length) out.body.reserve(static_cast<size_t>(length));
            char buf[16 * 1024];
            for (;;) {
                // One byte past the cap at most: enough to know it is too long.
                const size_t want = std::min(sizeof buf, cap + 1 - out.body.size());
                in.read(buf, static_cast<std::streamsize>(want));
                const auto n = static_cast<size_t>(in.gcount());
                out.body.append(buf, n);
                if (out.body.size() > cap)
                    throw Error(ErrorKind::too_large, out.url,
                                "the answer (HTTP " + std::to_string(out.status) +
                                    ") is longer than the response cap of " + std::to_string(cap) +
                                    " bytes",
                                out.status);
                if (n < want) break;  // the end of the body
            }
            if (known_length && out.body.size() < static_cast<uint64_t>(length))
                throw Error(ErrorKind::network, out.url,
                            "the answer was cut short (" + std::to_string(out.body.size()) +
                                " of " + std::to_string(length) + " bytes)",
                            out.status);
        } catch (const Error&) {
            throw;
        } catch (...) {
            rethrow(out.url);
        }
        return out;
    }

    static Poco::Timespan span(std::chrono::milliseconds d) {
        return Poco::Timespan(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
    }

    // The client side of the TLS handshake on a connected socket, all of it
    // within `timeout`: non-blocking, polled against a deadline. Then the
    // certificate's host name is checked (the chain was, in the handshake).
    static Poco::Net::SecureStreamSocket handshake(const Poco::Net::StreamSocket& tcp,
                                                   const std::string& host,
                                                   Poco::Net::Context::Ptr context,
                                                   std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        Poco::Net::StreamSocket plain = tcp;
        plain.setBlocking(false);  // so that attach() leaves the handshake to us
        Poco::Net::SecureStreamSocket tls =
            Poco::Net::SecureStreamSocket::attach(plain, host, context);
        for (;;) {
            const int rc = tls.completeHandshake();
            if (rc == 1) break;
            if (rc == 0)
                throw Poco::Net::SSLConnectionUnexpectedlyClosedException(
                    "the server closed the connection during the TLS handshake");
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left <= std::chrono::milliseconds(0) ||
                !tls.poll(span(left), rc == Poco::Net::SecureStreamSocket::ERR_SSL_WANT_WRITE
                                          ? Poco::Net::Socket::SELECT_WRITE
                                          : Poco::Net::Socket::SELECT_READ))
                throw Poco::TimeoutException("TLS handshake");
        }
        tls.setBlocking(true);
        tls.verifyPeerCertificate(host);
        return tls;
    }

    // Poco reports each failure as its own exception type; say which in words
    // an operator can act on.
    [[noreturn]] static void rethrow(const std::string& url) {
        try {
            throw;
        } catch (const Poco::TimeoutException&) {
            throw Error(ErrorKind::timeout, url, "timed out");
        } catch (const Poco::Net::ConnectionRefusedException&) {
            throw Error(ErrorKind::network, url, "connection refused");
        } catch (const Poco::Net::DNSException& e) {
            throw Error(ErrorKind::network, url, "host name not resolved (" + e.message() + ")");
        } catch (const Poco::Net::CertificateValidationException& e) {
            throw Error(ErrorKind::tls, url, "TLS certificate refused: " + e.message());
        } catch (const Poco::Net::SSLException& e) {
            throw Error(ErrorKind::tls, url, "TLS failed: " + e.message());
        } catch (const Poco::Net::ConnectionResetException&) {
            throw Error(ErrorKind::network, url, "connection reset by the server");
        } catch (const Poco::Net::NoMessageException&) {
            throw Error(ErrorKind::network, url,
                        "the server closed the connection without answering");
        } catch (const Poco::Exception& e) {
            throw Error(ErrorKind::network, url, e.displayText());
        } catch (const std::exception& e) {
            throw Error(ErrorKind::network, url, e.what());
        }
    }

    std::shared_ptr<const Tls> tls_;
    ClientOptions options_;
};

}  // namespace clayhook_plugins::http

// plugins/common/http_kit.hpp, the HTTP client of the bundled plugins and of
// the host's Clay client, against real servers on 127.0.0.1: the response cap,
// Retry-After, timeouts, TLS with ca_file added to the system's CAs,
// redirects, and how errors are classified.
#include "http_kit.hpp"

#include "support/FakeServer.h"
#include "support/TempDir.h"
#include "support/TestPki.h"
#include "support/Wait.h"

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Timestamp.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace http = clayhook_plugins::http;
using namespace clayhook::test;
using namespace std::chrono_literals;
using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

namespace {

constexpr size_t kMiB = size_t{1} << 20;

http::Endpoint loopback(uint16_t port, bool tls = false) {
    return http::Endpoint::parse(
        (tls ? "https://localhost:" : "http://127.0.0.1:") + std::to_string(port),
        http::AllowHttp::loopback);
}

http::Request get(std::string path, http::Headers headers = {}) {
    return {"GET", std::move(path), std::move(headers), ""};
}

// The error send() throws, or a failed test when it answers.
http::Error error_of(const std::function<http::Response()>& call) {
    try {
        http::Response r = call();
        FAIL("an answer came: HTTP " << r.status);
    } catch (const http::Error& e) {
        return e;
    }
    throw std::logic_error("unreachable");
}

// The server of most tests: the path says what to answer.
//   /len/N      N bytes with a Content-Length
//   /chunked/N  N bytes, chunked
//   /status/N   status N, with the request's X-Retry-After as Retry-After
//   /old        302 to /new;  /new: 200 "new";  /loop: 302 to /loop
//   /auth       200 with the request's Authorization as the body
struct Scripted {
    std::atomic<int> new_hits{0};
    std::atomic<int> requests{0};
    FakeServer server;

    explicit Scripted(const std::string& cert = "", const std::string& key = "")
        : server([this](HTTPServerRequest& req, HTTPServerResponse& resp) { answer(req, resp); },
                 cert, key) {}

    void answer(HTTPServerRequest& req, HTTPServerResponse& resp) {
        ++requests;
        const std::string uri = req.getURI();
        auto number = [&](const std::string& prefix) {
            return static_cast<size_t>(std::stoull(uri.substr(prefix.size())));
        };
        if (uri.rfind("/len/", 0) == 0) {
            std::string body(number("/len/"), 'a');
            resp.setContentLength64(static_cast<Poco::Int64>(body.size()));
            resp.send() << body;
        } else if (uri.rfind("/chunked/", 0) == 0) {
            std::string body(number("/chunked/"), 'c');
            resp.setChunkedTransferEncoding(true);
            resp.send() << body;
        } else if (uri.rfind("/status/", 0) == 0) {
            resp.setStatusAndReason(
                static_cast<HTTPResponse::HTTPStatus>(static_cast<int>(number("/status/"))));
            if (req.has("X-Retry-After")) resp.set("Retry-After", req.get("X-Retry-After"));
            resp.setContentLength(2);
            resp.send() << "no";
        } else if (uri == "/old" || uri == "/loop") {
            resp.setStatusAndReason(HTTPResponse::HTTP_FOUND);
            resp.set("Location", uri == "/old" ? "/new" : "/loop");
            resp.setContentLength(0);
            resp.send();
        } else if (uri == "/new") {
            ++new_hits;
            resp.setContentLength(3);
            resp.send() << "new";
        } else if (uri == "/auth") {
            std::string auth = req.get("Authorization", "");
            resp.setContentLength64(static_cast<Poco::Int64>(auth.size()));
            resp.send() << auth;
        } else {
            resp.setStatusAndReason(HTTPResponse::HTTP_NOT_FOUND);
            resp.setContentLength(0);
            resp.send();
        }
    }
    uint16_t port() const { return server.port(); }
};

// A door a server thread waits behind until the test is over.
class Gate {
  public:
    void wait() {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return open_; });
    }
    void open() {
        {
            std::lock_guard lock(mu_);
            open_ = true;
        }
        cv_.notify_all();
    }

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool open_ = false;
};

// One connection on 127.0.0.1, served by hand on a thread: the request's head
// is read, then `serve` writes whatever it likes, byte by byte if need be.
// Its destructor opens the gate `serve` may wait behind, then joins.
class OneShotServer {
  public:
    using Serve = std::function<void(Poco::Net::StreamSocket&, Gate&)>;

    explicit OneShotServer(Serve serve)
        : listener_(Poco::Net::SocketAddress("127.0.0.1", 0)), port_(listener_.address().port()) {
        thread_ = std::thread([this, serve = std::move(serve)] {
            try {
                Poco::Net::StreamSocket s = listener_.acceptConnection();
                accepted_ = true;
                if (stopping_) return;
                s.setReceiveTimeout(Poco::Timespan(10, 0));
                std::string head;
                char c = 0;
                while (head.find("\r\n\r\n") == std::string::npos && s.receiveBytes(&c, 1) == 1)
                    head.push_back(c);
                serve(s, gate_);
            } catch (const Poco::Exception&) {
                // the client went away: nothing more to do
            }
            done_ = true;
        });
    }
    ~OneShotServer() {
        gate_.open();
        stopping_ = true;
        if (!accepted_) {
            try {  // wake the accept that nobody else will
                Poco::Net::StreamSocket poke(Poco::Net::SocketAddress("127.0.0.1", port_));
            } catch (const Poco::Exception&) {
            }
        }
        thread_.join();
    }
    OneShotServer(const OneShotServer&) = delete;
    OneShotServer& operator=(const OneShotServer&) = delete;

    uint16_t port() const { return port_; }
    bool done() const { return done_; }

  private:
    Poco::Net::ServerSocket listener_;
    uint16_t port_;
    Gate gate_;
    std::atomic<bool> accepted_{false}, stopping_{false}, done_{false};
    std::thread thread_;
};

// Sets an environment variable for a scope, then puts back what was there.
class ScopedEnv {
  public:
    ScopedEnv(const char* name, const std::string& value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        ::setenv(name, value.c_str(), 1);
    }
    ~ScopedEnv() {
        if (old_)
            ::setenv(name_, old_->c_str(), 1);
        else
            ::unsetenv(name_);
    }

  private:
    const char* name_;
    std::optional<std::string> old_;
};

using Clock = std::chrono::steady_clock;

}  // namespace

// ---------------------------------------------------------------------------
// the response cap

TEST_CASE("http kit: an answer at the cap is read, one byte over is refused naming the cap",
          "[http-kit]") {
    Scripted s;
    http::Client client("");
    REQUIRE(client.options().max_response_bytes == kMiB);  // the default: 1 MiB
    const auto ep = loopback(s.port());
    for (const std::string framing : {"/len/", "/chunked/"}) {
        INFO(framing);
        http::Response r = client.send(ep, get(framing + std::to_string(kMiB)));
        CHECK(r.status == 200);
        CHECK(r.body.size() == kMiB);

        http::Error e =
            error_of([&] { return client.send(ep, get(framing + std::to_string(kMiB + 1))); });
        CHECK(e.kind() == http::ErrorKind::too_large);
        CHECK_THAT(e.what(), Catch::Contains("response cap of 1048576 bytes"));
        CHECK(e.status() == 200);
        CHECK_FALSE(e.retryable());
        CHECK(http::classify(e).kind == http::Verdict::fail);
    }
    // A Content-Length past the cap is refused before the body: it says the length.
    http::Error e =
        error_of([&] { return client.send(ep, get("/len/" + std::to_string(kMiB + 1))); });
    CHECK_THAT(e.what(), Catch::Contains("is 1048577 bytes"));

    // The cap is the client's: a smaller one refuses what the default takes.
    http::ClientOptions small;
    small.max_response_bytes = 1000;
    http::Client tight("", small);
    CHECK(tight.send(ep, get("/chunked/1000")).body.size() == 1000);
    CHECK(error_of([&] { return tight.send(ep, get("/chunked/1001")); }).kind() ==
          http::ErrorKind::too_large);
}

TEST_CASE("http kit: an endless answer is cut off just past the cap, not read to its end",
          "[http-kit]") {
    // No length, no chunks: the body ends when the server closes, which this
    // one does only after 512 MiB or when the client hangs up.
    constexpr size_t kEndless = 512 * kMiB;
    std::atomic<size_t> sent{0};
    OneShotServer server([&](Poco::Net::StreamSocket& s, Gate&) {
        s.setSendBufferSize(64 * 1024);
        s.setSendTimeout(Poco::Timespan(30, 0));
        const std::string head =
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n";
        s.sendBytes(head.data(), static_cast<int>(head.size()));
        const std::string chunk(64 * 1024, 'x');
        while (sent < kEndless) {
            int n = s.sendBytes(chunk.data(), static_cast<int>(chunk.size()));
            if (n <= 0) break;
            sent += static_cast<size_t>(n);
        }
    });
    http::Client client("");
    http::Error e = error_of([&] { return client.send(loopback(server.port()), get("/")); });
    CHECK(e.kind() == http::ErrorKind::too_large);
    CHECK_THAT(e.what(), Catch::Contains("longer than the response cap of 1048576 bytes"));
    // The client hung up: the server's writes fail soon after.
    REQUIRE(wait_until([&] { return server.done(); }));
    INFO("the server sent " << sent << " bytes");
    // The cap, plus what the two sockets' kernel buffers held: far from all of it.
    CHECK(sent < kMiB + 16 * kMiB);
    CHECK(sent >= kMiB);
}

// ---------------------------------------------------------------------------
// Retry-After

TEST_CASE("http kit: Retry-After as delta-seconds or an HTTP-date, capped", "[http-kit]") {
    using http::parse_retry_after;
    using std::chrono::seconds;
    CHECK(parse_retry_after("120") == seconds(120));
    CHECK(parse_retry_after(" 7\t") == seconds(7));
    CHECK(parse_retry_after("0") == seconds(0));
    // Capped: 24 h unless the caller says otherwise; never an overflow.
    CHECK(parse_retry_after("86401") == seconds(86'400));
    CHECK(parse_retry_after("99999999999999999999999") == seconds(86'400));
    CHECK(parse_retry_after("600", seconds(60)) == seconds(60));
    // The three HTTP-date forms; a date past is "now".
    CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == seconds(0));
    CHECK(parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT") == seconds(0));
    CHECK(parse_retry_after("Wed Oct 21 07:28:00 2015") == seconds(0));
    Poco::Timestamp in_an_hour = Poco::Timestamp() + Poco::Timespan(3600, 0);
    auto later = parse_retry_after(
        Poco::DateTimeFormatter::format(in_an_hour, Poco::DateTimeFormat::HTTP_FORMAT));
    REQUIRE(later);
    CHECK(*later >= seconds(3590));
    CHECK(*later <= seconds(3601));
    CHECK(parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT") == seconds(86'400));
    // Neither form.
    for (const char* bad : {"", "  ", "soon", "-5", "+5", "1.5", "5s", "2015-10-21T07:28:00Z"}) {
        INFO(bad);
        CHECK_FALSE(parse_retry_after(bad));
    }
}

TEST_CASE("http kit: 429 and 5xx are retryable with their Retry-After, other 4xx are not",
          "[http-kit]") {
    Scripted s;
    http::Client client("");
    const auto ep = loopback(s.port());
    auto status = [&](int code, const std::string& retry_after = "") {
        http::Headers h;
        if (!retry_after.empty()) h.emplace_back("X-Retry-After", retry_after);
        return client.send(ep, get("/status/" + std::to_string(code), h));
    };

    http::Response limited = status(429, "30");
    CHECK(limited.status == 429);
    CHECK(limited.retry_after == std::chrono::seconds(30));
    http::Verdict v = http::classify(limited);
    CHECK(v.kind == http::Verdict::retry);
    CHECK(v.retry_after == std::chrono::seconds(30));

    Poco::Timestamp soon = Poco::Timestamp() + Poco::Timespan(120, 0);
    http::Response busy =
        status(503, Poco::DateTimeFormatter::format(soon, Poco::DateTimeFormat::HTTP_FORMAT));
    v = http::classify(busy);
    CHECK(v.kind == http::Verdict::retry);
    REQUIRE(v.retry_after);
    CHECK(*v.retry_after > std::chrono::seconds(100));
    CHECK(*v.retry_after <= std::chrono::seconds(121));

    // Unreadable or absent: retryable, without a wait.
    v = http::classify(status(429, "whenever"));
    CHECK(v.kind == http::Verdict::retry);
    CHECK_FALSE(v.retry_after);
    for (int code : {408, 500, 502, 504}) {
        INFO(code);
        CHECK(http::classify(status(code)).kind == http::Verdict::retry);
    }
    for (int code : {400, 401, 403, 404, 409, 422}) {
        INFO(code);
        CHECK(http::classify(status(code, "5")).kind == http::Verdict::fail);
    }
    CHECK(http::classify(status(200)).kind == http::Verdict::ok);
    CHECK(http::classify(status(204)).kind == http::Verdict::ok);
}

// ---------------------------------------------------------------------------
// no answer: network errors and timeouts

TEST_CASE("http kit: nothing listening is a retryable network error", "[http-kit]") {
    uint16_t port = 0;
    {
        Poco::Net::ServerSocket s(Poco::Net::SocketAddress("127.0.0.1", 0));
        port = s.address().port();
    }
    http::Client client("");
    http::Error e = error_of([&] { return client.send(loopback(port), get("/")); });
    CHECK(e.kind() == http::ErrorKind::network);
    CHECK(e.retryable());
    CHECK(http::classify(e).kind == http::Verdict::retry);
    CHECK_THAT(e.what(), Catch::Equals("connection refused"));
    CHECK(e.url() == "http://127.0.0.1:" + std::to_string(port) + "/");
}

TEST_CASE("http kit: a server that never answers fails the call within the timeout", "[http-kit]") {
    // Listening, never accepting: the kernel completes the connection, the
    // request goes into its buffer, and nothing ever comes back.
    Poco::Net::ServerSocket silent(Poco::Net::SocketAddress("127.0.0.1", 0));
    http::ClientOptions o;
    o.connect_timeout = 300ms;
    o.read_timeout = 300ms;
    http::Client client(TestPki::shared().ca, o);
    for (bool tls : {false, true}) {
        INFO((tls ? "https (the handshake never ends)" : "http"));
        const auto start = Clock::now();
        http::Error e =
            error_of([&] { return client.send(loopback(silent.address().port(), tls), get("/")); });
        const auto took = Clock::now() - start;
        CHECK(e.kind() == http::ErrorKind::timeout);
        CHECK_THAT(e.what(), Catch::Equals("timed out"));
        CHECK(e.retryable());
        CHECK(took >= 250ms);
        CHECK(took < 300ms + 1s);  // the timeout, not a multiple of it
    }
}

TEST_CASE("http kit: a body that stops coming is a timeout, not a short answer", "[http-kit]") {
    OneShotServer server([](Poco::Net::StreamSocket& s, Gate& gate) {
        const std::string part = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";
        s.sendBytes(part.data(), static_cast<int>(part.size()));
        gate.wait();  // the other 90 bytes never come
    });
    http::ClientOptions o;
    o.read_timeout = 300ms;
    http::Client client("", o);
    const auto start = Clock::now();
    http::Error e = error_of([&] { return client.send(loopback(server.port()), get("/")); });
    CHECK(e.kind() == http::ErrorKind::timeout);
    CHECK(Clock::now() - start < 5s);
}

TEST_CASE("http kit: a body cut short of its Content-Length is a retryable error", "[http-kit]") {
    OneShotServer server([](Poco::Net::StreamSocket& s, Gate&) {
        const std::string part = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";
        s.sendBytes(part.data(), static_cast<int>(part.size()));
        s.shutdownSend();  // and closed
    });
    http::Client client("");
    http::Error e = error_of([&] { return client.send(loopback(server.port()), get("/")); });
    CHECK(e.kind() == http::ErrorKind::network);
    CHECK(e.retryable());
    CHECK_THAT(e.what(), Catch::Contains("cut short (10 of 100 bytes)"));
}

// ---------------------------------------------------------------------------
// TLS: ca_file is added to the system's CAs

TEST_CASE("http kit: ca_file is trusted in addition to the system's CAs", "[http-kit]") {
    const TestPki& pki = TestPki::shared();
    Scripted ours(pki.good_cert, pki.good_key);

    SECTION("with ca_file, the private CA's certificate is accepted") {
        http::Client client(pki.ca);
        CHECK(client.send(loopback(ours.port(), true), get("/new")).status == 200);
        // By IP address too: the certificate names 127.0.0.1.
        auto by_ip = http::Endpoint::parse("https://127.0.0.1:" + std::to_string(ours.port()));
        CHECK(client.send(by_ip, get("/new")).status == 200);
    }
    SECTION("without it, the same certificate is refused, retryably") {
        http::Client client("");
        http::Error e =
            error_of([&] { return client.send(loopback(ours.port(), true), get("/")); });
        CHECK(e.kind() == http::ErrorKind::tls);
        CHECK_THAT(e.what(), Catch::Contains("certificate verify failed"));
        CHECK(e.retryable());
        CHECK(ours.requests == 0);
    }
    SECTION("the system's CAs stay trusted when ca_file is given") {
        // Another CA stands in for the system's: OpenSSL's default paths
        // (what the kit loads as "the system's CAs") read $SSL_CERT_FILE.
        TestPki system_pki;
        Scripted public_site(system_pki.good_cert, system_pki.good_key);
        ScopedEnv system_store("SSL_CERT_FILE", system_pki.ca);
        http::Client with_ca_file(pki.ca);
        CHECK(with_ca_file.send(loopback(public_site.port(), true), get("/new")).status == 200);
        CHECK(with_ca_file.send(loopback(ours.port(), true), get("/new")).status == 200);
        // Without ca_file: the system's only.
        http::Client system_only("");
        CHECK(system_only.send(loopback(public_site.port(), true), get("/new")).status == 200);
        CHECK(error_of([&] {
                  return system_only.send(loopback(ours.port(), true), get("/"));
              }).kind() == http::ErrorKind::tls);
    }
    SECTION("a certificate for another name is refused even from a trusted CA") {
        Scripted other(pki.other_cert, pki.other_key);
        http::Client client(pki.ca);
        http::Error e =
            error_of([&] { return client.send(loopback(other.port(), true), get("/")); });
        CHECK(e.kind() == http::ErrorKind::tls);
        CHECK(other.requests == 0);
    }
    SECTION("a ca_file that is not a file is refused up front, naming it") {
        CHECK_THROWS_WITH(http::Tls("/nonexistent/ca.pem"),
                          Catch::Contains("ca_file /nonexistent/ca.pem: not a file"));
        TempDir dir;
        auto junk = dir.write("junk.pem", "not a certificate\n");
        CHECK_THROWS_WITH(http::Tls(junk), Catch::Contains("ca_file " + junk));
    }
}

// ---------------------------------------------------------------------------
// redirects

TEST_CASE("http kit: redirects are not followed unless asked", "[http-kit]") {
    Scripted s;
    const auto ep = loopback(s.port());
    SECTION("by default a 302 is the answer, and not retryable") {
        http::Client client("");
        http::Response r = client.send(ep, get("/old"));
        CHECK(r.status == 302);
        CHECK(*r.header("Location") == "/new");
        CHECK(s.new_hits == 0);
        CHECK(http::classify(r).kind == http::Verdict::fail);
    }
    SECTION("asked, within max_redirects") {
        http::ClientOptions o;
        o.max_redirects = 2;
        o.allow_http = http::AllowHttp::loopback;
        http::Client client("", o);
        http::Response r = client.send(ep, get("/old"));
        CHECK(r.status == 200);
        CHECK(r.body == "new");
        CHECK(r.url == "http://127.0.0.1:" + std::to_string(s.port()) + "/new");
        CHECK(s.new_hits == 1);
        http::Error e = error_of([&] { return client.send(ep, get("/loop")); });
        CHECK(e.kind() == http::ErrorKind::redirect);
        CHECK_THAT(e.what(), Catch::Contains("more than 2 redirect(s)"));
        CHECK(s.requests == 2 + 3);
    }
    SECTION("a redirect to another origin does not carry Authorization") {
        Scripted elsewhere;
        FakeServer hop([&](HTTPServerRequest& req, HTTPServerResponse& resp) {
            resp.setStatusAndReason(HTTPResponse::HTTP_TEMPORARY_REDIRECT);
            resp.set("Location",
                     req.getURI() == "/here"
                         ? "/auth"
                         : "http://127.0.0.1:" + std::to_string(elsewhere.port()) + "/auth");
            resp.setContentLength(0);
            resp.send();
        });
        FakeServer same([&](HTTPServerRequest& req, HTTPServerResponse& resp) {
            if (req.getURI() == "/auth") return s.answer(req, resp);
            resp.setStatusAndReason(HTTPResponse::HTTP_TEMPORARY_REDIRECT);
            resp.set("Location", "/auth");
            resp.setContentLength(0);
            resp.send();
        });
        http::ClientOptions o;
        o.max_redirects = 1;
        o.allow_http = http::AllowHttp::loopback;
        http::Client client("", o);
        const http::Headers auth{{"Authorization", "Bearer secret"}};
        CHECK(client.send(loopback(hop.port()), get("/away", auth)).body.empty());
        CHECK(client.send(loopback(same.port()), get("/here", auth)).body == "Bearer secret");
    }
}

// ---------------------------------------------------------------------------
// endpoints

TEST_CASE("http kit: an endpoint is https unless http is allowed, for loopback or anywhere",
          "[http-kit]") {
    using http::AllowHttp;
    using http::Endpoint;
    auto refused = [](const std::string& url, AllowHttp allow) -> std::string {
        try {
            Endpoint::parse(url, allow);
        } catch (const http::UrlError& e) {
            return e.what();
        }
        return "";
    };
    Endpoint e = Endpoint::parse("https://api.example.com/base/v1/");
    CHECK(e.https);
    CHECK(e.host == "api.example.com");
    CHECK(e.port == 443);
    CHECK(e.prefix == "/base/v1");
    CHECK(e.url("/x") == "https://api.example.com:443/base/v1/x");
    // The path as written: an escaped '/' stays escaped.
    CHECK(Endpoint::parse("https://h:8443/a%2Fb").prefix == "/a%2Fb");

    CHECK_THAT(refused("http://api.example.com", AllowHttp::no), Catch::Contains("https://"));
    CHECK_THAT(refused("http://api.example.com", AllowHttp::loopback),
               Catch::Contains("not loopback"));
    CHECK(refused("http://api.example.com", AllowHttp::any).empty());
    for (const char* local :
         {"http://127.0.0.1:1", "http://127.9.9.9", "http://localhost:80", "http://[::1]:8080/p"}) {
        INFO(local);
        CHECK(refused(local, AllowHttp::loopback).empty());
        CHECK_FALSE(refused(local, AllowHttp::no).empty());
    }
    CHECK(Endpoint::parse("http://[::1]:8080", AllowHttp::loopback).origin() ==
          "http://[::1]:8080");
    CHECK_THAT(refused("ftp://example.com", AllowHttp::no),
               Catch::Equals("is not an https:// URL"));
    CHECK_THAT(refused("ftp://example.com", AllowHttp::loopback),
               Catch::Equals("is not an http:// or https:// URL"));
    CHECK_THAT(refused("api.clay.com", AllowHttp::no), Catch::Contains("not an https:// URL"));
    CHECK_THAT(refused("https://", AllowHttp::no), Catch::Equals("has no host"));
    CHECK_THAT(refused("https://h/v1?x=1", AllowHttp::no), Catch::Contains("query"));

    auto [ep, target] = Endpoint::split("http://127.0.0.1:9/a%2Fb?c=d#frag", AllowHttp::loopback);
    CHECK(ep.port == 9);
    CHECK(target == "/a%2Fb?c=d");
    CHECK(Endpoint::split("https://h?q").second == "/?q");
}

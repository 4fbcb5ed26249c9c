#pragma once

// A fake file server for tests: a real Poco HTTPS server (or plain HTTP
// without a certificate) on 127.0.0.1, port 0 (the kernel picks one),
// serving scripted routes and recording every request.
//
// A route can answer with any status, headers and body, gzip the body,
// send it chunked, wait before the body, trickle it slowly, cut it short
// (announce Content-Length N, close after fewer bytes) or redirect.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace clayhook::test {

class FakeServer;

class FakeFileServer {
  public:
    // Serves https:// with this certificate and key (PEM files) when set,
    // plain http:// otherwise.
    struct Tls {
        std::string cert_file;
        std::string key_file;
    };

    struct Route {
        int status = 200;
        std::string body{};
        std::vector<std::pair<std::string, std::string>> headers{};
        std::string location{};      // sets Location (use with a 3xx status)
        bool gzip = false;           // gzip the body and send Content-Encoding: gzip
        bool gzip_silently = false;  // gzip the body without saying so (a .gz file)
        bool chunked = false;        // Transfer-Encoding: chunked
        bool no_length = false;      // neither Content-Length nor chunked: ends at close
        // Content-Length of the full body, but the connection closes after
        // this many body bytes.
        std::optional<size_t> truncate_after{};
        // Content-Length announced instead of the real one (for "too big").
        std::optional<uint64_t> content_length{};
        std::chrono::milliseconds delay_before_headers{0};
        std::chrono::milliseconds delay_before_body{0};  // after the headers
        // With trickle_every > 0, the body goes out trickle_bytes at a time,
        // with a pause of trickle_every between pieces.
        std::chrono::milliseconds trickle_every{0};
        size_t trickle_bytes = 1;
    };

    struct Request {
        std::string method;
        std::string target;  // path and query, as sent
        std::string host;    // the Host header
        std::string accept_encoding;
        std::chrono::steady_clock::time_point at;
    };

    explicit FakeFileServer(const Tls& tls = {});
    ~FakeFileServer();
    FakeFileServer(const FakeFileServer&) = delete;
    FakeFileServer& operator=(const FakeFileServer&) = delete;

    uint16_t port() const { return port_; }
    bool tls() const { return tls_; }
    // scheme://host:PORT + path_and_query; host "localhost" or "127.0.0.1".
    std::string url(const std::string& path_and_query, const std::string& host = "localhost") const;

    // Sets the answer for a path (the query is ignored when matching).
    // Unknown paths answer 404.
    void route(const std::string& path, Route r);

    std::vector<Request> requests() const;
    // How many requests asked for this path (the query ignored).
    size_t count(const std::string& path) const;

    struct State;  // shared with the request handlers

  private:
    std::shared_ptr<State> state_;
    std::unique_ptr<FakeServer> server_;
    uint16_t port_ = 0;
    bool tls_ = false;
};

}  // namespace clayhook::test

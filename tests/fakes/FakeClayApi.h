#pragma once

// A fake Clay API for tests: a real HTTP server on 127.0.0.1 (port 0: the
// kernel picks one), speaking the shapes of docs/contracts.md
// ("Clay API"), with scriptable rate limiting and a record of every request.

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace clayhook::test {

class FakeServer;

class FakeClayApi {
  public:
    struct Request {
        std::string method;
        std::string path;           // with the query, as sent
        std::string authorization;  // the Authorization header ("" when absent)
        std::string body;
        std::chrono::steady_clock::time_point at;
    };

    struct Webhook {
        std::string id, url, table_id, created_at, secret;
        std::vector<std::string> events;
    };

    // Serves https:// with this certificate and key (PEM files) when set.
    struct Tls {
        std::string cert_file;
        std::string key_file;
    };

    // Requests must carry `Authorization: Bearer <api_key>`; others get 401.
    explicit FakeClayApi(std::string api_key = "test-clay-api-key", const Tls& tls = {});
    ~FakeClayApi();
    FakeClayApi(const FakeClayApi&) = delete;
    FakeClayApi& operator=(const FakeClayApi&) = delete;

    uint16_t port() const { return port_; }
    std::string base_url() const;  // http://127.0.0.1:PORT (https:// with Tls)
    const std::string& api_key() const { return api_key_; }

    // The next `count` requests get 429, with `Retry-After: <retry_after>`
    // unless retry_after is empty.
    void rate_limit_next(int count, std::string retry_after);

    // Adds a webhook as if registered earlier; returns it (with its secret).
    Webhook seed(const std::string& url, const std::string& table_id,
                 std::vector<std::string> events);

    std::vector<Request> requests() const;
    std::vector<Webhook> webhooks() const;

    struct State;  // shared with the request handlers

  private:
    std::string api_key_;
    std::shared_ptr<State> state_;
    std::unique_ptr<FakeServer> server_;
    uint16_t port_ = 0;
    bool tls_ = false;
};

}  // namespace clayhook::test

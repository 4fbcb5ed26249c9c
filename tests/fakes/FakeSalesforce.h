#pragma once

// A fake Salesforce for tests: a real HTTP server on 127.0.0.1 (port 0: the
// kernel picks one), speaking the shapes of docs/contracts.md
// ("Salesforce REST"): the OAuth 2.0 token endpoint (client credentials and
// JWT bearer), upsert by external id one at a time and as sObject
// Collections, errors included; with scriptable failures and a record of
// every request and every stored record.

#include <clayhook/json.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace clayhook::test {

class FakeServer;

class FakeSalesforce {
  public:
    struct Options {
        std::string client_id = "test-client-id";
        std::string client_secret = "test-client-secret";
        std::string username = "integration@example.com";
        // JWT bearer: the assertion's structure and claims are always checked
        // (alg RS256, iss, sub, aud, exp within 5 minutes); its RS256
        // signature too when this PEM public key is set.
        std::string jwt_public_key_file;
        std::string jwt_audience;  // "" = base_url()
    };

    struct Request {
        std::string method;
        std::string path;           // as sent, with the query
        std::string authorization;  // the Authorization header ("" when absent)
        std::string content_type;
        std::string body;
        std::chrono::steady_clock::time_point at;
    };

    struct Record {
        std::string id;
        std::string object;
        clayhook::json::Value fields;  // every field written so far (the external id too)
        int writes = 0;                // 1 after the create, +1 per update
    };

    FakeSalesforce();
    explicit FakeSalesforce(Options options);
    ~FakeSalesforce();
    FakeSalesforce(const FakeSalesforce&) = delete;
    FakeSalesforce& operator=(const FakeSalesforce&) = delete;

    uint16_t port() const { return port_; }
    std::string base_url() const;  // http://127.0.0.1:PORT: login URL and instance URL both

    // Every token issued so far stops working: the next API call with one
    // gets 401 [{"errorCode":"INVALID_SESSION_ID"}].
    void expire_tokens();

    // The next `count` data API calls (not token requests) get `status` with
    // [{"message": message, "errorCode": code}], e.g. 403
    // REQUEST_LIMIT_EXCEEDED or 503 SERVER_UNAVAILABLE.
    void fail_next(int count, int status, std::string code, std::string message);

    // Any record written with this external id value is refused with this
    // validation error: single upsert 400 [{message, errorCode, fields}],
    // collections {"success":false,"errors":[{statusCode, message, fields}]}.
    void reject(std::string ext_value, std::string code, std::string message,
                std::vector<std::string> fields = {});

    // Updates of a single record are answered 204 (older API versions)
    // instead of 200 with a body.
    void answer_updates_with_204(bool on);

    // Sforce-Limit-Info: api-usage=N/limit on every data API answer, N
    // counting from `used` up by one per call.
    void set_api_usage(int64_t used, int64_t limit);
    int64_t api_used() const;

    std::vector<Request> requests() const;
    size_t token_requests() const;                   // POST …/oauth2/token
    std::vector<Request> api_requests() const;       // everything under /services/data/
    std::vector<Record> records() const;             // in creation order
    std::vector<std::string> issued_tokens() const;  // in issue order

    struct State;  // shared with the request handlers

  private:
    std::shared_ptr<State> state_;
    std::unique_ptr<FakeServer> server_;
    uint16_t port_ = 0;
};

}  // namespace clayhook::test

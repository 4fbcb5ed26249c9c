#pragma once

// A fake HubSpot CRM v3 for tests: a real HTTP server on 127.0.0.1 (port 0:
// the kernel picks one; https:// with a certificate when asked), speaking the
// shapes of docs/contracts.md ("HubSpot CRM v3"):
//
//   POST /crm/v3/objects/{contacts|companies}/batch/upsert
//        {"inputs":[{"idProperty","id","properties"}]}  (1..100 inputs)
//        → 200 {"status":"COMPLETE","results":[…],"startedAt","completedAt"}
//        → 207 with "errors":[{"status":"error","category":"VALIDATION_ERROR",
//          "message","context":{"ids":[…]}}] and "numErrors" when some inputs fail
//   POST /crm/v4/associations/contacts/companies/batch/associate/default
//        {"inputs":[{"from":{"id"},"to":{"id"}}]} → 200 (207 for unknown ids)
//
// Records live in memory keyed by their idProperty's value (emails and
// domains without regard to case), so an upsert of a known id updates it.
// Every request is recorded. Scriptable: 429s (with Retry-After) and 5xx for
// the next N calls, per-record validation errors; a wrong bearer token gets
// 401 with HubSpot's error shape.

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace clayhook::test {

class FakeServer;

class FakeHubSpot {
  public:
    struct Request {
        std::string method;
        std::string path;           // with the query, as sent
        std::string authorization;  // the Authorization header ("" when absent)
        std::string body;
        int status = 0;  // what the fake answered
        std::chrono::steady_clock::time_point at;
    };

    struct Record {
        std::string id;  // HubSpot's object id ("101", "102", …)
        std::map<std::string, std::string> properties;
        int writes = 0;  // upserts that touched it (1 = created, never updated)
    };

    // Serves https:// with this certificate and key (PEM files) when set.
    struct Tls {
        std::string cert_file;
        std::string key_file;
    };

    explicit FakeHubSpot(std::string token = "pat-na1-test-hubspot-token", const Tls& tls = {});
    ~FakeHubSpot();
    FakeHubSpot(const FakeHubSpot&) = delete;
    FakeHubSpot& operator=(const FakeHubSpot&) = delete;

    uint16_t port() const { return port_; }
    std::string base_url() const;  // http://127.0.0.1:PORT (https://localhost:PORT with Tls)
    const std::string& token() const { return token_; }

    // The next `count` requests get 429 RATE_LIMIT, with `Retry-After:
    // <retry_after>` unless it is empty.
    void rate_limit_next(int count, std::string retry_after);
    // The next `count` requests get this status (500, 502, 503…).
    void fail_next(int count, int status);
    // Upserts of this id (contacts' email, companies' domain) fail with a
    // VALIDATION_ERROR carrying `message`; the others in the batch go in.
    void reject(const std::string& object, const std::string& id, std::string message);
    // Any upsert batch holding this id is refused whole: 400 VALIDATION_ERROR
    // with `message` (as HubSpot does for some invalid inputs).
    void reject_batch(const std::string& object, const std::string& id, std::string message);

    std::vector<Request> requests() const;
    // Upsert calls of one object type ("contacts" / "companies").
    std::vector<Request> upserts(const std::string& object) const;
    // The stored records of one object type, by their idProperty's value.
    std::map<std::string, Record> records(const std::string& object) const;
    // (contact id, company id) pairs associated so far.
    std::vector<std::pair<std::string, std::string>> associations() const;

    struct State;  // shared with the request handlers

  private:
    std::string token_;
    std::shared_ptr<State> state_;
    std::unique_ptr<FakeServer> server_;
    uint16_t port_ = 0;
    bool tls_ = false;
};

}  // namespace clayhook::test

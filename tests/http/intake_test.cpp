// The intake over real sockets: a real IntakeServer on 127.0.0.1:0, a real
// SQLite file, Poco's HTTP client.
#include "config/ConfigLoader.h"
#include "http/IntakeRig.h"
#include "http/IntakeServer.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "store/Store.h"
#include "support/Subprocess.h"
#include "support/TempDir.h"
#include "support/TestPki.h"
#include "verify/Verifier.h"

#include <sqlite3.h>

#include <clayhook/json.hpp>

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/StreamCopier.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

using namespace clayhook;
using clayhook::test::TempDir;
namespace net = Poco::Net;

using test::delivery;
using test::kSecond;
using test::kSecret;
using test::Reply;
using Host = test::IntakeRig;

// Each case runs against both intake servers (listener.server).
#define BOTH_SERVERS \
    GENERATE(as<std::string>{}, std::string(", server: events"), std::string(", server: threads"))

TEST_CASE("intake: a signed delivery is stored and acknowledged with its id", "[intake]") {
    Host h("", BOTH_SERVERS);
    auto r = h.post_signed(delivery(1));
    REQUIRE(r.status == 200);
    auto doc = json::parse(r.body);
    CHECK(doc.get_bool("received", false));
    std::string id = doc.get_string("id", "");
    REQUIRE(!id.empty());
    auto ev = h.store->get(id);
    REQUIRE(ev.has_value());
    CHECK(ev->type == "enrichment.completed");
    CHECK(ev->body == delivery(1));
    CHECK(h.store->event_count() == 1);
}

TEST_CASE("intake: verification failures are 401 without echo and nothing is stored", "[intake]") {
    Host h("", BOTH_SERVERS);
    std::string body = delivery(2);
    auto sig = hmac_sha256_hex(kSecret, body);
    auto tampered = h.request("POST", "/webhooks/clay", delivery(3), {{"x-clay-signature", sig}});
    CHECK(tampered.status == 401);
    CHECK(tampered.body.find("row_3") == std::string::npos);
    CHECK(h.post_signed(body, "wrong-secret-entirely").status == 401);
    CHECK(h.request("POST", "/webhooks/clay", body).status == 401);
    CHECK(h.store->event_count() == 0);
    CHECK_THAT(h.log_out.str(), Catch::Contains("reason=bad_signature"));
    CHECK_THAT(h.log_out.str(), Catch::Contains("reason=missing_header"));
    CHECK_THAT(h.log_out.str(), Catch::Contains("remote=127.0.0.1"));
    CHECK(h.log_out.str().find(kSecret) == std::string::npos);
    CHECK(h.metrics.value("clayhook_intake_verify_failures_total",
                          R"(reason="bad_signature",source="clay")") == 2);
}

TEST_CASE("intake: the second of two secrets and a sha256= prefix are accepted", "[intake]") {
    Host h("", BOTH_SERVERS);
    CHECK(h.post_signed(delivery(4), kSecond).status == 200);
    CHECK(h.post_signed(delivery(5), kSecret, "sha256=").status == 200);
    CHECK(h.store->event_count() == 2);
}

TEST_CASE("intake: method, path, size and parse errors", "[intake]") {
    Host h("", BOTH_SERVERS);
    CHECK(h.request("GET", "/webhooks/clay", "").status == 405);
    CHECK(h.request("POST", "/nope", "{}").status == 404);
    std::string big(5000, 'x');
    auto r = h.request("POST", "/webhooks/clay", big, {{"x-clay-signature", "00"}});
    CHECK(r.status == 413);
    auto chunked = h.request("POST", "/webhooks/clay", big, {{"x-clay-signature", "00"}}, true);
    CHECK(chunked.status == 413);
    std::string bad = "{\"event\":";
    CHECK(h.post_signed(bad).status == 400);
    CHECK(h.post_signed(R"({"row_id":"r1"})").status == 400);
    CHECK(h.store->event_count() == 0);
    // A small chunked body is fine.
    std::string ok = delivery(6);
    CHECK(h.request("POST", "/webhooks/clay", ok,
                    {{"x-clay-signature", hmac_sha256_hex(kSecret, ok)}}, true)
              .status == 200);
}

TEST_CASE("intake: a duplicate is acknowledged as such with the first id", "[intake]") {
    Host h("", BOTH_SERVERS);
    auto first = json::parse(h.post_signed(delivery(7)).body);
    auto second = h.post_signed(delivery(7));
    REQUIRE(second.status == 200);
    auto doc = json::parse(second.body);
    CHECK(doc.get_bool("duplicate", false));
    CHECK(doc.get_string("id", "") == first.get_string("id", "x"));
    CHECK(h.store->event_count() == 1);
}

TEST_CASE("intake: many concurrent copies of one delivery store exactly one", "[intake]") {
    Host h("", BOTH_SERVERS);
    std::string body = delivery(8);
    std::vector<std::thread> threads;
    std::atomic<int> stored{0}, dup{0}, other{0};
    for (int i = 0; i < 12; ++i)
        threads.emplace_back([&] {
            auto r = h.post_signed(body);
            auto doc = json::parse(r.body);
            if (r.status != 200)
                ++other;
            else if (doc.get_bool("duplicate", false))
                ++dup;
            else
                ++stored;
        });
    for (auto& t : threads)
        t.join();
    CHECK(stored == 1);
    CHECK(dup == 11);
    CHECK(other == 0);
    CHECK(h.store->event_count() == 1);
}

TEST_CASE("intake: what was acknowledged before a restart is there after it", "[intake]") {
    Host h("", BOTH_SERVERS);
    std::vector<std::string> ids;
    for (int i = 0; i < 20; ++i)
        ids.push_back(json::parse(h.post_signed(delivery(100 + i)).body).get_string("id", ""));
    h.restart();
    for (const auto& id : ids)
        CHECK(h.store->get(id).has_value());
    CHECK(h.store->event_count() == 20);
    // Dedup survives the restart too.
    CHECK(json::parse(h.post_signed(delivery(100)).body).get_bool("duplicate", false));
}

TEST_CASE("intake: health, readiness and metrics", "[intake]") {
    const std::string server = BOTH_SERVERS;
    Host h("", server);
    CHECK(h.request("GET", "/healthz", "").status == 200);
    CHECK(h.request("GET", "/readyz", "").status == 200);
    h.post_signed(delivery(9));
    auto m = h.request("GET", "/metrics", "");
    CHECK(m.status == 200);
    CHECK_THAT(
        m.body,
        Catch::Contains(
            R"(clayhook_intake_requests_total{outcome="accepted",source="clay",status="200"} 1)"));
    CHECK_THAT(m.body, Catch::Contains("clayhook_store_queue_depth"));
    // /metrics takes no body: one is refused unread, as too large.
    CHECK(h.request("POST", "/metrics", "x").status == 413);
    CHECK(h.request("GET", "/metrics", "").status == 200);
    CHECK(h.request("POST", "/healthz", "x").status == 200);
    // The event loops hand /metrics (which asks the store) to a thread of
    // its own, so a slow store never stalls a loop's connections.
    bool scraper = false;
    for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
        std::ifstream comm(t.path() / "comm");
        std::string name;
        std::getline(comm, name);
        scraper = scraper || name == "intake-metrics";
    }
    CHECK(scraper == (server == ", server: events"));
}

TEST_CASE("intake: a store that cannot take the write answers 503 with Retry-After", "[intake]") {
    Host h("", BOTH_SERVERS);
    // The direct path: the answer waits for the tables' commit.
    h.config.store.journal = false;
    h.restart();
    REQUIRE(h.post_signed(delivery(20)).status == 200);
    // Another connection holds SQLite's write lock past the store's busy timeout.
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(h.config.store.path.c_str(), &other) == SQLITE_OK);
    sqlite3_busy_timeout(other, 5000);  // a commit of ours may be finishing
    REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    auto r = h.post_signed(delivery(21));
    CHECK(r.status == 503);
    CHECK(r.retry_after == "1");
    CHECK(h.request("GET", "/readyz", "").status == 503);
    REQUIRE(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(other);
    // Nothing was acknowledged, so the sender's retry is stored, not a duplicate.
    auto again = h.post_signed(delivery(21));
    CHECK(again.status == 200);
    CHECK_FALSE(json::parse(again.body).get_bool("duplicate", false));
    CHECK(h.request("GET", "/readyz", "").status == 200);
    CHECK_THAT(h.log_out.str(), Catch::Contains("status=503"));
}

TEST_CASE(
    "intake: with the journal, a database file moved away answers 503 with Retry-After "
    "until it is back",
    "[intake][journal]") {
    Host h("", BOTH_SERVERS);
    REQUIRE(h.config.store.journal);  // the default
    REQUIRE(h.post_signed(delivery(30)).status == 200);
    // The journal could take the record, but the tables it would be indexed
    // into are no longer where the host opened them: nothing is acknowledged.
    const std::string db = h.config.store.path;
    std::filesystem::rename(db, db + ".moved");
    auto r = h.post_signed(delivery(31));
    CHECK(r.status == 503);
    CHECK(r.retry_after == "1");
    CHECK(h.request("GET", "/readyz", "").status == 503);
    std::filesystem::rename(db + ".moved", db);
    // Nothing was acknowledged, so the sender's retry is stored, not a duplicate.
    auto again = h.post_signed(delivery(31));
    CHECK(again.status == 200);
    CHECK_FALSE(json::parse(again.body).get_bool("duplicate", false));
    CHECK(h.request("GET", "/readyz", "").status == 200);
    CHECK_THAT(h.log_out.str(), Catch::Contains("status=503"));
}

TEST_CASE("intake: TLS with the configured certificate and key", "[intake][tls]") {
    const auto& pki = test::TestPki::shared();  // good_cert: SAN IP:127.0.0.1, signed by ca
    const std::string& cert = pki.good_cert;
    const std::string& key = pki.good_key;
    Host h("", ", tls: {cert_file: " + cert + ", key_file: " + key + "}");
    Poco::Net::Context::Ptr ctx = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "",
                                                         pki.ca, Poco::Net::Context::VERIFY_STRICT);
    net::HTTPSClientSession s("127.0.0.1", h.server->port(), ctx);
    std::string body = delivery(30);
    net::HTTPRequest req("POST", "/webhooks/clay", net::HTTPMessage::HTTP_1_1);
    req.set("x-clay-signature", hmac_sha256_hex(kSecret, body));
    req.setContentLength64(static_cast<Poco::Int64>(body.size()));
    s.sendRequest(req) << body;
    net::HTTPResponse resp;
    std::string answer;
    Poco::StreamCopier::copyToString(s.receiveResponse(resp), answer);
    CHECK(resp.getStatus() == 200);
    CHECK(json::parse(answer).get_bool("received", false));
    CHECK(h.store->event_count() == 1);
}

TEST_CASE("intake: connections past max_connections are closed unserved", "[intake]") {
    Host h("", ", max_connections: 2" + BOTH_SERVERS);
    // Two idle keep-alive connections take the two places.
    net::HTTPClientSession a("127.0.0.1", h.server->port()), b("127.0.0.1", h.server->port());
    for (auto* s : {&a, &b}) {
        s->setKeepAlive(true);
        net::HTTPRequest req("GET", "/healthz", net::HTTPMessage::HTTP_1_1);
        req.setKeepAlive(true);
        s->sendRequest(req);
        net::HTTPResponse resp;
        std::string ignored;
        Poco::StreamCopier::copyToString(s->receiveResponse(resp), ignored);
        REQUIRE(resp.getStatus() == 200);
    }
    // The third is answered 503 with Retry-After before its request is read
    // (or, if the close overtakes the answer, reset): never served.
    int status = 0;
    std::string retry_after;
    try {
        net::HTTPClientSession c("127.0.0.1", h.server->port());
        net::HTTPRequest req("GET", "/healthz", net::HTTPMessage::HTTP_1_1);
        c.sendRequest(req);
        net::HTTPResponse resp;
        c.receiveResponse(resp);
        status = resp.getStatus();
        retry_after = resp.get("Retry-After", "");
    } catch (const Poco::Exception&) {
        status = -1;
    }
    INFO("status " << status);
    CHECK((status == 503 || status == -1));
    if (status == 503) CHECK(retry_after == "1");
    CHECK(h.metrics.value("clayhook_intake_connections_refused_total",
                          "reason=\"max_connections\"") >= 1);
}

TEST_CASE("intake: timestamped HMAC, token and Standard Webhooks sources over sockets",
          "[intake]") {
    Host h(R"(  - name: ts
    path: /webhooks/ts
    verify: {scheme: hmac-sha256-timestamp, tolerance: 5m, secrets: ["${INTAKE_S1}"]}
  - name: tok
    path: /webhooks/tok
    verify: {scheme: token, secrets: ["${INTAKE_S1}"]}
    event_type: {from: fixed, value: table.row.created}
  - name: sw
    path: /webhooks/sw
    verify: {scheme: standard-webhooks, secrets: ["${INTAKE_SW}"]}
)");
    std::string body = delivery(40);
    auto now = std::chrono::system_clock::now();
    auto secs = [](std::chrono::system_clock::time_point t) {
        return std::to_string(
            std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count());
    };
    auto ts_post = [&](std::chrono::system_clock::time_point t) {
        std::string ts = secs(t);
        return h.request("POST", "/webhooks/ts", body,
                         {{"x-clay-timestamp", ts},
                          {"x-clay-signature", hmac_sha256_hex(kSecret, ts + "." + body)}});
    };
    CHECK(ts_post(now - std::chrono::minutes(10)).status == 401);
    CHECK(ts_post(now + std::chrono::minutes(10)).status == 401);
    CHECK(ts_post(now).status == 200);
    CHECK_THAT(h.log_out.str(), Catch::Contains("reason=stale_timestamp"));
    CHECK_THAT(h.log_out.str(), Catch::Contains("reason=future_timestamp"));

    // The token scheme, with a body that has no envelope: the type is fixed.
    CHECK(h.request("POST", "/webhooks/tok", R"({"a":1})", {{"x-clay-webhook-auth", "nope"}})
              .status == 401);
    auto tok = h.request("POST", "/webhooks/tok", R"({"a":1})", {{"x-clay-webhook-auth", kSecret}});
    REQUIRE(tok.status == 200);
    CHECK(h.store->get(json::parse(tok.body).get_string("id", ""))->type == "table.row.created");

    // Standard Webhooks: signed by the same code a sender would use, and
    // deduplicated by webhook-id.
    const Config& c = h.config;
    auto headers = sign_headers(c.sources[3].verify, body, now, "msg_intake_1");
    auto sw = h.request("POST", "/webhooks/sw", body, headers);
    CHECK(sw.status == 200);
    auto again = h.request("POST", "/webhooks/sw", body,
                           sign_headers(c.sources[3].verify, body, now, "msg_intake_1"));
    CHECK(json::parse(again.body).get_bool("duplicate", false));
}

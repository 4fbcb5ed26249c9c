// Every delivery a sender got a 200 for is on disk: a real `clayhook serve`
// child takes signed deliveries from several client threads, is SIGKILLed in
// the middle of them, and every id it acknowledged is in the store when a new
// host opens the same file.
#include "config/ConfigLoader.h"
#include "store/SqliteStore.h"
#include "store/Store.h"
#include "support/HostProcess.h"
#include "support/Wait.h"
#include "verify/Verifier.h"

#include <clayhook/json.hpp>

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>

#include <catch2/catch.hpp>

#include <signal.h>

#include <atomic>
#include <mutex>
#include <thread>

using namespace clayhook;
using namespace clayhook::test;
using namespace std::chrono_literals;

namespace {

const char* kSecret = "durability-test-secret";

}  // namespace

TEST_CASE("durability: acknowledged deliveries survive a SIGKILL of the host", "[durability]") {
    // Both write paths: inserts committed before the answer, and the intake
    // journal (synced before the answer, indexed at the next start).
    const bool journal = GENERATE(false, true);
    INFO("store.journal: " << journal);
    auto host = std::make_unique<HostProcess>();
    std::string db = host->dir.file("var/clayhook.db");
    host->write_config(R"(admin: {enabled: false}
listener: {address: 127.0.0.1, port: 0, threads: 16}
store: {path: )" + db + R"(, durable: true, journal: )" +
                       (journal ? "true" : "false") + R"(}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["${DURABILITY_SECRET}"]}
)");
    host->options.env["DURABILITY_SECRET"] = kSecret;
    host->start();
    const uint16_t port = host->port();

    std::mutex mu;
    std::vector<std::string> acked;
    std::atomic<bool> stop{false};
    std::atomic<int> sent{0};
    auto client = [&](int t) {
        Poco::Net::HTTPClientSession s("127.0.0.1", port);
        s.setKeepAlive(true);
        for (int i = 0; !stop && i < 100000; ++i) {
            std::string body = R"({"event":"enrichment.completed","row_id":"row_)" +
                               std::to_string(t) + "_" + std::to_string(i) +
                               R"(","timestamp":"2026-11-26T12:00:42.042Z"})";
            try {
                Poco::Net::HTTPRequest req("POST", "/webhooks/clay",
                                           Poco::Net::HTTPMessage::HTTP_1_1);
                req.setKeepAlive(true);
                req.set("x-clay-signature", hmac_sha256_hex(kSecret, body));
                req.setContentLength64(static_cast<Poco::Int64>(body.size()));
                s.sendRequest(req) << body;
                Poco::Net::HTTPResponse resp;
                std::string answer;
                Poco::StreamCopier::copyToString(s.receiveResponse(resp), answer);
                ++sent;
                if (resp.getStatus() == 200) {
                    std::lock_guard lock(mu);
                    acked.push_back(json::parse(answer).get_string("id", ""));
                }
            } catch (const Poco::Exception&) {
                return;  // the host is gone
            }
        }
    };
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t)
        clients.emplace_back(client, t);
    // Kill once a good number have been acknowledged: a condition, not a sleep.
    wait_until(
        [&] {
            std::lock_guard lock(mu);
            return acked.size() >= 300;
        },
        30s);
    host->signal(SIGKILL);
    CHECK(host->wait(30s) == 128 + SIGKILL);
    stop = true;
    for (auto& c : clients)
        c.join();

    REQUIRE(acked.size() >= 300);
    StoreConfig sc;
    sc.path = db;
    sc.journal = journal;
    auto store = open_store(sc, 16);
    if (journal) {
        // What the kill left in the journal goes into the tables first.
        auto* sqlite = dynamic_cast<SqliteStore*>(store.get());
        REQUIRE(sqlite != nullptr);
        REQUIRE(sqlite->intake_journal()->drain());
        CHECK(sqlite->intake_journal()->stats().backlog == 0);
    }
    size_t missing = 0;
    for (const auto& id : acked)
        if (!store->get(id)) ++missing;
    INFO(acked.size() << " acknowledged of " << sent.load() << " answered");
    CHECK(missing == 0);
    CHECK(store->event_count() >= acked.size());
}

// The public intake against hostile clients, over real sockets: request
// smuggling, incomplete bodies, header bytes, deadlines and the per-peer cap.
// Bytes are written by hand (support/RawHttp.h); peers are distinct loopback
// addresses.
#include "http/IntakeRig.h"
#include "support/RawHttp.h"
#include "support/TestPki.h"

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>

#include <clayhook/json.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

using namespace clayhook;
using namespace std::chrono_literals;
using test::RawConnection;
using test::statuses;
using test::wait_until;

// Each case runs against both intake servers (listener.server).
#define BOTH_SERVERS \
    GENERATE(as<std::string>{}, std::string(", server: events"), std::string(", server: threads"))

namespace {

// A token source: no signature over the body, so only framing stands
// between a truncated body and the store. Its type and delivery id come
// from headers.
const char* kTokenSource = R"(  - name: tok
    path: /webhooks/tok
    max_body_bytes: 4KiB
    verify: {scheme: token, header: x-token, secrets: ["${INTAKE_S1}"]}
    event_type: {from: header, header: x-event-type}
    idempotency: {header: x-delivery-id}
)";

std::string token_post(const std::string& framing, const std::string& more_fields = "") {
    return "POST /webhooks/tok HTTP/1.1\r\nHost: h\r\nX-Token: " + std::string(test::kSecret) +
           "\r\nX-Event-Type: table.row.created\r\n" + more_fields + framing + "\r\n";
}

const std::string kPipelined = "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n";

// Sends `bytes` on a fresh connection and reads until the server closes it.
std::string exchange(uint16_t port, const std::string& bytes, bool half_close = false,
                     bool* closed = nullptr) {
    RawConnection c(port);
    c.send(bytes);
    if (half_close) c.half_close();
    return c.read_until_close(10s, closed);
}

}  // namespace

TEST_CASE(
    "intake: Content-Length with Transfer-Encoding is 400, closed, the pipelined request "
    "unserved",
    "[intake][smuggling]") {
    test::IntakeRig h(kTokenSource, BOTH_SERVERS);
    const std::string body = R"({"a":1})";
    struct Case {
        const char* name;
        std::string request;
    };
    std::vector<Case> cases = {
        {"CL + TE chunked", token_post("Content-Length: 12\r\nTransfer-Encoding: chunked\r\n") +
                                "7\r\n" + body + "\r\n0\r\n\r\n"},
        {"two Content-Length values",
         token_post("Content-Length: 7\r\nContent-Length: 40\r\n") + body},
        {"TE xchunked + CL",
         token_post("Content-Length: 7\r\nTransfer-Encoding: xchunked\r\n") + body},
        {"TE chunked, identity",
         token_post("Transfer-Encoding: chunked, identity\r\n") + "7\r\n" + body + "\r\n0\r\n\r\n"},
        {"TE xchunked alone", token_post("Transfer-Encoding: xchunked\r\n") + body},
        {"Content-Length: -1", token_post("Content-Length: -1\r\n") + body},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        bool closed = false;
        std::string got = exchange(h.server->port(), c.request + kPipelined, false, &closed);
        CHECK(statuses(got) == std::vector<int>{400});  // the /healthz after it: never
        CHECK(closed);
    }
    CHECK(h.store->event_count() == 0);
    CHECK(h.metrics.value("clayhook_intake_bad_requests_total", "status=\"400\"") >= 6);
    CHECK_THAT(h.log_out.str(), !Catch::Contains("level=error"));
}

TEST_CASE("intake: a body that did not arrive whole is never processed", "[intake][smuggling]") {
    test::IntakeRig h(kTokenSource, BOTH_SERVERS);
    const std::string body = R"({"a":1})";
    SECTION("shorter than its Content-Length, then a half-close") {
        std::string got =
            exchange(h.server->port(), token_post("Content-Length: 20\r\n") + body, true);
        CHECK(statuses(got) == std::vector<int>{400});
        CHECK(h.metrics.value("clayhook_intake_incomplete_requests_total", "") == 1);
    }
    SECTION("chunked without its last chunk, then a half-close") {
        std::string got =
            exchange(h.server->port(),
                     token_post("Transfer-Encoding: chunked\r\n") + "7\r\n" + body + "\r\n", true);
        CHECK(statuses(got) == std::vector<int>{400});
    }
    SECTION("chunk data not followed by CRLF") {
        std::string got = exchange(h.server->port(), token_post("Transfer-Encoding: chunked\r\n") +
                                                         "7\r\n" + body + "XX0\r\n\r\n");
        CHECK(statuses(got) == std::vector<int>{400});
    }
    SECTION("a bad chunk size") {
        std::string got = exchange(h.server->port(), token_post("Transfer-Encoding: chunked\r\n") +
                                                         "7zz\r\n" + body + "\r\n0\r\n\r\n");
        CHECK(statuses(got) == std::vector<int>{400});
    }
    CHECK(h.store->event_count() == 0);
    // The same token request, whole, is stored: the cases above failed for
    // their framing alone.
    std::string got = exchange(h.server->port(),
                               token_post("Transfer-Encoding: chunked\r\nConnection: close\r\n") +
                                   "7\r\n" + body + "\r\n0\r\n\r\n");
    CHECK(statuses(got) == std::vector<int>{200});
    CHECK(h.store->event_count() == 1);
}

TEST_CASE("intake: pipelined requests after a whole one are served in order", "[intake]") {
    test::IntakeRig h(kTokenSource, BOTH_SERVERS);
    const std::string body = R"({"a":1})";
    std::string two =
        token_post("Content-Length: 7\r\nX-Delivery-Id: d1\r\n") + body +
        token_post("Content-Length: 7\r\nX-Delivery-Id: d2\r\nConnection: close\r\n") + body;
    CHECK(statuses(exchange(h.server->port(), two)) == std::vector<int>{200, 200});
    CHECK(h.store->event_count() == 2);
}

TEST_CASE("intake: header bytes are taken as sent, and names must be printable UTF-8", "[intake]") {
    test::IntakeRig h(kTokenSource, BOTH_SERVERS);
    const std::string body = R"({"a":1})";
    auto post = [&](const std::string& fields) {
        return statuses(exchange(h.server->port(),
                                 "POST /webhooks/tok HTTP/1.1\r\nHost: h\r\nConnection: close\r\n" +
                                     fields + "Content-Length: 7\r\n\r\n" + body));
    };
    // An RFC 2047 encoded-word of the right token is not the token.
    std::string tok = std::string("X-Token: ") + test::kSecret + "\r\n";
    CHECK(post("X-Token: =?UTF-8?Q?" + std::string(test::kSecret) +
               "?=\r\nX-Event-Type: t.x\r\n") == std::vector<int>{401});
    // Types that are not printable UTF-8 are refused, not stored.
    CHECK(post(tok + "X-Event-Type: bad\xff\xfe\r\n") == std::vector<int>{400});
    CHECK(post(tok + "X-Event-Type: =?UTF-8?Q?a=0D=0Ab?=\r\n") == std::vector<int>{200});
    CHECK(post(tok + "X-Event-Type: \xc2\x9b"
                     "31m\r\n") == std::vector<int>{400});  // C1 CSI
    CHECK(post(tok + "X-Event-Type: t.x\r\nX-Delivery-Id: a\xff\r\n") == std::vector<int>{400});
    CHECK(post(tok + "X-Event-Type: " + std::string(300, 't') + "\r\n") == std::vector<int>{400});
    // UTF-8 bytes pass through untouched.
    CHECK(post(tok + "X-Event-Type: caf\xc3\xa9\r\nX-Delivery-Id: \xc3\xa9t\xc3\xa9\r\n") ==
          std::vector<int>{200});
    CHECK(h.store->event_count() == 2);
    auto rows = h.store->list_events(EventFilter{});
    bool found = false;
    for (const auto& e : rows)
        if (e.type == "caf\xc3\xa9") found = true;
    CHECK(found);
    // The type from a JSON body: control characters are refused too.
    test::IntakeRig b;
    std::string esc = R"({"event":"enrichment.completed\u001b[2J","row_id":"r","timestamp":"t"})";
    CHECK(b.post_signed(esc).status == 400);
    CHECK(b.store->event_count() == 0);
}

TEST_CASE("intake: HTTP versions, Host, and 100 Continue only after the size check", "[intake]") {
    test::IntakeRig h("", BOTH_SERVERS);
    CHECK(statuses(exchange(h.server->port(), "GET /healthz HTTP/9.9\r\nHost: h\r\n\r\n")) ==
          std::vector<int>{505});
    CHECK(statuses(exchange(h.server->port(), "GET /healthz HTTP/1.1\r\n\r\n")) ==
          std::vector<int>{400});
    CHECK(statuses(
              exchange(h.server->port(), "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")) ==
          std::vector<int>{400});
    {
        // Past the 4 KiB cap: 413 at once, and no 100 Continue before it.
        RawConnection c(h.server->port());
        c.send(
            "POST /webhooks/clay HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
            "Content-Length: 10000\r\n\r\n");
        std::string got = c.read_until_close(10s);
        CHECK(statuses(got) == std::vector<int>{413});
    }
    {
        // Within the cap: 100 Continue, then the body, then the answer.
        std::string body = test::delivery(1);
        RawConnection c(h.server->port());
        c.send(
            "POST /webhooks/clay HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
            "X-Clay-Signature: " +
            hmac_sha256_hex(test::kSecret, body) +
            "\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n");
        std::string first = c.read_until("\r\n\r\n", 10s);
        CHECK(statuses(first) == std::vector<int>{100});
        c.send(body);
        std::string rest = first + c.read_until_close(10s);
        CHECK(statuses(rest) == std::vector<int>{100, 200});
    }
    CHECK(h.store->event_count() == 1);
}

TEST_CASE("intake: a body that stalls is cut at its deadline without an answer", "[intake]") {
    test::IntakeRig h(kTokenSource, ", body_timeout: 300ms, body_min_rate: 1MiB" + BOTH_SERVERS);
    bool closed = false;
    RawConnection c(h.server->port());
    c.send(token_post("Content-Length: 7\r\n") + R"({"a")");
    std::string got = c.read_until_close(10s, &closed);
    CHECK(closed);
    CHECK(got.empty());  // no 400/401: the request never ended
    // Counted by the connection's thread once its read returns (the close
    // may reach the client first).
    CHECK(wait_until(
        [&] {
            return h.metrics.value("clayhook_intake_connections_timed_out_total",
                                   "phase=\"body\"") == 1;
        },
        10s));
    CHECK(h.store->event_count() == 0);
}

TEST_CASE("intake: a client trickling its headers is cut at the header deadline", "[intake]") {
    test::IntakeRig h("", ", header_timeout: 500ms, read_timeout: 10s" + BOTH_SERVERS);
    RawConnection c(h.server->port());
    std::string head = "POST /webhooks/clay HTTP/1.1\r\nHost: h\r\nX-Pad-0: 0\r\n";
    c.send(head);
    // One more header line every 50 ms: each wait is short, the whole is not.
    bool closed = false;
    for (int i = 1; i < 400 && !closed; ++i) {
        if (!c.send("X-Pad-" + std::to_string(i) + ": x\r\n")) break;
        c.read_until_close(50ms, &closed);
    }
    CHECK(closed);
    CHECK(wait_until(
        [&] {
            return h.metrics.value("clayhook_intake_connections_timed_out_total",
                                   "phase=\"header\"") >= 1;
        },
        10s));
}

TEST_CASE("intake: hundreds of slow connections from one peer do not starve another",
          "[intake][slow]") {
    // The rig runs 16 threads; one peer may hold 4 of them; heads must come within 2 s.
    test::IntakeRig h("", ", max_connections_per_peer: 4, header_timeout: 2s" +
                              BOTH_SERVERS);  // threads: 16 threads
    const uint16_t port = h.server->port();
    std::atomic<bool> stop{false};
    std::atomic<int> opened{0};
    // The attacker, 127.0.0.2: keeps 300 connections open, each sending a
    // header line now and then and never finishing; reconnects when cut.
    std::thread attacker([&] {
        std::vector<std::unique_ptr<RawConnection>> conns(300);
        int line = 0;
        while (!stop) {
            for (auto& c : conns) {
                if (stop) break;
                bool closed = false;
                if (c) c->read_now(&closed);
                if (!c || closed || !c->send("X-Slow-" + std::to_string(line) + ": x\r\n")) {
                    try {
                        c = std::make_unique<RawConnection>(port, "127.0.0.2");
                        c->send("POST /webhooks/clay HTTP/1.1\r\nHost: h\r\n");
                        ++opened;
                    } catch (const std::exception&) {
                        c.reset();
                    }
                }
            }
            ++line;
            std::this_thread::sleep_for(100ms);  // paces the attacker, not the test
        }
    });
    REQUIRE(wait_until([&] { return opened.load() >= 300; }, 30s));
    // The honest sender, 127.0.0.1: every delivery answered 200.
    int ok = 0;
    for (int i = 0; i < 40; ++i) {
        std::string body = test::delivery(1000 + i);
        RawConnection c(port, "127.0.0.1");
        c.send(
            "POST /webhooks/clay HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-Clay-Signature: " +
            hmac_sha256_hex(test::kSecret, body) +
            "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
        if (statuses(c.read_until_close(10s)) == std::vector<int>{200}) ++ok;
    }
    stop = true;
    attacker.join();
    CHECK(ok == 40);
    CHECK(h.store->event_count() == 40);
    CHECK(h.metrics.value("clayhook_intake_connections_refused_total", "reason=\"per_peer\"") >=
          200);
}

TEST_CASE("intake: a peer past its cap gets 503 with Retry-After, other peers do not", "[intake]") {
    test::IntakeRig h("", ", max_connections_per_peer: 2" + BOTH_SERVERS);
    const uint16_t port = h.server->port();
    RawConnection a(port, "127.0.0.3"), b(port, "127.0.0.3");
    a.send("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n");
    b.send("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK(statuses(a.read_until("ok\n", 10s)) == std::vector<int>{200});
    CHECK(statuses(b.read_until("ok\n", 10s)) == std::vector<int>{200});
    RawConnection third(port, "127.0.0.3");
    std::string refused = third.read_until_close(10s);
    CHECK(statuses(refused) == std::vector<int>{503});
    CHECK_THAT(refused, Catch::Contains("Retry-After: 1"));
    RawConnection other(port, "127.0.0.4");
    other.send("GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    CHECK(statuses(other.read_until_close(10s)) == std::vector<int>{200});
    // A place freed is a place again.
    a.half_close();
    a.read_until_close(10s);
    CHECK(wait_until(
        [&] {
            RawConnection again(port, "127.0.0.3");
            again.send("GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
            return statuses(again.read_until_close(10s)) == std::vector<int>{200};
        },
        10s));
}

TEST_CASE("intake: bodies past listener.max_body_memory get 503 with Retry-After, as they arrive",
          "[intake][body-budget]") {
    test::IntakeRig h(kTokenSource, ", max_body_memory: 6KiB" + BOTH_SERVERS);
    const uint16_t port = h.server->port();
    MetricValue& held = h.metrics.gauge("clayhook_intake_body_memory_bytes");
    MetricValue& refused = h.metrics.counter("clayhook_intake_body_memory_refused_total");
    // A JSON body of exactly n bytes.
    auto body = [](size_t n) { return R"({"p":")" + std::string(n - 8, 'x') + R"("})"; };
    auto post = [&](const std::string& id, size_t n) {
        return token_post("Content-Length: " + std::to_string(n) + "\r\n",
                          "X-Delivery-Id: " + id + "\r\nConnection: close\r\n");
    };

    // A head alone holds nothing, whatever length it announces: a client
    // cannot hold the intake's body memory without sending the bytes.
    RawConnection announcer(port, "127.0.0.6");
    announcer.send(post("d-announced", 4000));
    // A slow sender holds the 3999 bytes it sent of its 4000.
    RawConnection slow(port, "127.0.0.5");
    const std::string slow_body = body(4000);
    slow.send(post("d-slow", 4000) + slow_body.substr(0, 3999));
    REQUIRE(wait_until([&] { return held.get() == 3999; }, 10s));

    // 3000 more would pass the cap: refused, the rest unread. Its first
    // 1000 bytes fit, and go back with the refusal, before its answer.
    {
        RawConnection big(port, "127.0.0.7");
        const std::string big_body = body(3000);
        big.send(post("d-big", 3000) + big_body.substr(0, 1000));
        REQUIRE(wait_until([&] { return held.get() == 4999; }, 10s));
        big.send(big_body.substr(1000));
        const std::string answer = big.read_until("later\"}", 10s);
        CHECK(statuses(answer) == std::vector<int>{503});
        CHECK_THAT(answer, Catch::Contains("Retry-After: 1"));
        CHECK_THAT(answer, Catch::Contains("too many request bodies in memory"));
        CHECK(held.get() == 3999);  // while the connection still lingers
        CHECK(refused.get() == 1);
    }
    // What fits is served meanwhile.
    CHECK(statuses(exchange(h.server->port(), post("d-small", 1000) + body(1000))) ==
          std::vector<int>{200});
    CHECK(h.store->event_count() == 1);  // d-small alone
    // A malformed chunked body is told so (400), not to try again, even
    // when its bytes would not fit: a 503 would invite retries for ever.
    const std::string bad_chunk = exchange(
        h.server->port(), token_post("Transfer-Encoding: chunked\r\n", "X-Delivery-Id: d-bad\r\n") +
                              "c00\r\n" + std::string(0xc00, 'x') + "ZZ");
    CHECK(statuses(bad_chunk) == std::vector<int>{400});

    // Kept alive: a chunked body, then one pipelined behind it. Once the
    // chunked one is whole, the bytes behind it are the next request's, not
    // its own: counted with it, the pair would not fit beside the slow
    // sender's 3999. Each gives its bytes back once answered.
    const std::string chunked_body = body(1000);
    const std::string two =
        token_post("Transfer-Encoding: chunked\r\n", "X-Delivery-Id: d-chunked\r\n") + "1f4\r\n" +
        chunked_body.substr(0, 500) + "\r\n1f4\r\n" + chunked_body.substr(500) + "\r\n0\r\n\r\n" +
        post("d-after", 1500) + body(1500);
    CHECK(statuses(exchange(h.server->port(), two)) == std::vector<int>{200, 200});
    CHECK(wait_until([&] { return held.get() == 3999; }, 10s));
    CHECK(refused.get() == 1);

    // The slow body done and answered, its room comes back.
    slow.send(slow_body.substr(3999));
    CHECK(statuses(slow.read_until_close(10s)) == std::vector<int>{200});
    REQUIRE(wait_until([&] { return held.get() == 0; }, 10s));
    CHECK(statuses(exchange(h.server->port(), post("d-big", 3000) + body(3000))) ==
          std::vector<int>{200});
    CHECK(refused.get() == 1);
    CHECK(h.store->event_count() == 5);  // small, chunked, after, slow, big
}

TEST_CASE("intake: bodies nested to the JSON reader's limit are answered, not a crash",
          "[intake][json]") {
    // The reader recurses once per level; the intake's threads must have the
    // stack for its whole limit in every build (the sanitizer build's frames
    // are several times larger).
    test::IntakeRig h("", BOTH_SERVERS);
    auto nested = [](size_t levels, char open, const std::string& key) {
        std::string s;
        for (size_t i = 0; i < levels; ++i)
            s += open == '[' ? std::string("[") : "{\"" + key + "\":";
        s += "1";
        for (size_t i = 0; i < levels; ++i)
            s += open == '[' ? ']' : '}';
        return s;
    };
    int row = 0;
    for (char open : {'[', '{'}) {
        for (size_t levels : {json::detail::kMaxDepth - 1, json::detail::kMaxDepth}) {
            INFO("open " << open << " levels " << levels);
            // The envelope object is one level more.
            std::string body = R"({"event":"enrichment.completed","row_id":"deep_)" +
                               std::to_string(row++) + R"(","timestamp":"t","deep":)" +
                               nested(levels, open, "k") + "}";
            CHECK(h.post_signed(body).status == (levels < json::detail::kMaxDepth ? 200 : 400));
        }
    }
    CHECK(h.store->event_count() == 2);
    CHECK(h.post_signed(test::delivery(1)).status == 200);  // still serving
}

TEST_CASE("intake: with TLS, a connection refused at accept never blocks the acceptor",
          "[intake][tls]") {
    const auto& pki = test::TestPki::shared();
    test::IntakeRig h("", ", max_connections_per_peer: 1, tls: {cert_file: " + pki.good_cert +
                              ", key_file: " + pki.good_key + "}");
    const uint16_t port = h.server->port();
    // One peer takes its one place, and a second connection of its own is
    // refused; neither ever starts a TLS handshake.
    RawConnection held(port, "127.0.0.6");
    REQUIRE(wait_until(
        [&] {
            return h.metrics.value("clayhook_intake_connections_refused_total",
                                   "reason=\"per_peer\"") == 0;
        },
        1s));
    RawConnection refused(port, "127.0.0.6");
    REQUIRE(wait_until(
        [&] {
            return h.metrics.value("clayhook_intake_connections_refused_total",
                                   "reason=\"per_peer\"") == 1;
        },
        10s));
    // Another peer is served at once (a 503 written to the refused one would
    // wait for its handshake, holding the acceptor).
    Poco::Net::Context::Ptr ctx = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "",
                                                         pki.ca, Poco::Net::Context::VERIFY_STRICT);
    Poco::Net::HTTPSClientSession s("127.0.0.1", port, ctx);
    s.setTimeout(Poco::Timespan(5, 0));
    Poco::Net::HTTPRequest req("GET", "/healthz", Poco::Net::HTTPMessage::HTTP_1_1);
    s.sendRequest(req);
    Poco::Net::HTTPResponse resp;
    s.receiveResponse(resp);
    CHECK(resp.getStatus() == 200);
}

TEST_CASE(
    "intake: an answer to HEAD has no body, and the next request on the connection is "
    "read right",
    "[intake]") {
    test::IntakeRig h("", BOTH_SERVERS);
    RawConnection c(h.server->port());
    c.send(
        "HEAD /healthz HTTP/1.1\r\nHost: h\r\n\r\n"
        "GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    std::string got = c.read_until_close(10s);
    INFO(got);
    // Both heads say Content-Length: 3; only the GET carries "ok\n".
    CHECK(got.find("\r\n\r\nHTTP/1.1 200 OK\r\n") != std::string::npos);
    CHECK(got.size() >= 3);
    CHECK(got.substr(got.size() - 3) == "ok\n");
    CHECK(got.find("ok\n") == got.size() - 3);
}

TEST_CASE("intake: an HTTP/1.0 client kept alive is told so", "[intake]") {
    test::IntakeRig h("", BOTH_SERVERS);
    RawConnection c(h.server->port());
    c.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    std::string got = c.read_until("ok\n", 10s);
    CHECK_THAT(got, Catch::Contains("Connection: keep-alive\r\n"));
    c.send("GET /healthz HTTP/1.0\r\n\r\n");  // no keep-alive: the last
    bool closed = false;
    std::string last = c.read_until_close(10s, &closed);
    CHECK(closed);
    CHECK_THAT(last, Catch::Contains("Connection: close\r\n"));
}

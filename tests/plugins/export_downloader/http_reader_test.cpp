// The export-downloader's HTTP reader (plugins/export-downloader/
// http_reader.hpp), fed from memory: a connection that hands out pieces of a
// scripted answer, one per read, and a clock the test drives, so that a slow
// trickle or a silent server runs into the time budget without any sleep.
#include "export-downloader/http_reader.hpp"
#include "export-downloader/outcome.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/NetException.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <istream>
#include <string>
#include <vector>

using namespace clayhook::exportdl;
using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

// A steady clock that moves only when told.
struct FakeClock {
    Clock::time_point t{};
    Budget::Now now() {
        return [this] { return t; };
    }
};

// A connection from memory: each receive hands out (the rest of) the next
// piece, at most what fits; the clock moves `per_read` on every receive.
// When the pieces are out, `at_end` runs (the default: end of stream).
struct MemoryConnection {
    explicit MemoryConnection(std::vector<std::string> p) : pieces(std::move(p)) {}

    std::vector<std::string> pieces;
    FakeClock* clock = nullptr;
    milliseconds per_read{0};
    std::function<size_t(Poco::Timespan)> at_end;
    std::vector<Poco::Timespan> waits;  // every wait asked for
    size_t next = 0;

    Receive receive() {
        return [this](char* out, size_t cap, Poco::Timespan wait) -> size_t {
            waits.push_back(wait);
            if (clock != nullptr) clock->t += per_read;
            if (next == pieces.size()) return at_end ? at_end(wait) : 0;
            std::string& p = pieces[next];
            size_t n = std::min(cap, p.size());
            std::copy_n(p.data(), n, out);
            if (n == p.size())
                ++next;
            else
                p.erase(0, n);
            return n;
        };
    }
};

// `text` one byte per piece.
std::vector<std::string> bytes(const std::string& text) {
    std::vector<std::string> out;
    for (char c : text)
        out.emplace_back(1, c);
    return out;
}

// A budget that never runs out here.
Budget generous() {
    return Budget(1h, 24h);
}

// All of a body, read as the plugin does (an istream that rethrows).
std::string read_all(BodyBuf& body) {
    std::istream in(&body);
    in.exceptions(std::ios::badbit);
    std::string out;
    char buf[7];  // small reads, odd size
    while (in.read(buf, sizeof buf) || in.gcount() > 0)
        out.append(buf, static_cast<size_t>(in.gcount()));
    return out;
}

// The body of `wire` (framing included) read through a SocketBuf fed by
// `pieces` of it.
std::string body_of(std::vector<std::string> pieces, BodyBuf::Framing framing, uint64_t length = 0,
                    uint64_t limit = 1 << 20, uint64_t* wire = nullptr) {
    MemoryConnection c{std::move(pieces)};
    Budget budget = generous();
    SocketBuf conn(c.receive(), budget, 5);
    BodyBuf body(conn, framing, length, limit, 3);
    std::string out = read_all(body);
    if (wire != nullptr) *wire = body.wire_bytes();
    return out;
}

std::string body_of(const std::string& wire, BodyBuf::Framing framing, uint64_t length = 0,
                    uint64_t limit = 1 << 20) {
    return body_of(std::vector<std::string>{wire}, framing, length, limit);
}

// The Outcome `f` throws; fails the test when it throws none.
Outcome outcome_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Outcome& o) {
        return o;
    }
    FAIL("no Outcome thrown");
    return Outcome(true, "", 0ms);
}

ResponseHead head_of(const std::string& wire) {
    MemoryConnection c{{wire}};
    Budget budget = generous();
    SocketBuf conn(c.receive(), budget);
    return read_head(conn);
}

ResponseHead with_headers(std::initializer_list<std::pair<const char*, const char*>> fields) {
    ResponseHead h;
    h.status = 200;
    for (const auto& [k, v] : fields)
        h.headers.add(k, v);
    return h;
}

}  // namespace

// ---------------------------------------------------------------------------
// The head

TEST_CASE("http reader: status line and header fields", "[export-downloader][http-reader]") {
    MemoryConnection c{
        bytes("HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nX-Multi: a\r\n"
              "x-multi:  b  \r\nEmpty:\r\n\r\nBODY")};
    Budget budget = generous();
    SocketBuf conn(c.receive(), budget);
    ResponseHead h = read_head(conn);
    CHECK(h.status == 200);
    CHECK(h.reason == "OK");
    CHECK(h.get("content-type") == "text/csv");  // names case-insensitive
    CHECK(h.has("EMPTY"));
    CHECK(h.get("Empty", "fallback") == "");
    CHECK(h.get("Missing", "fallback") == "fallback");
    CHECK_FALSE(h.has("Missing"));
    std::vector<std::string> multi;
    for (const auto& [k, v] : h.headers)
        if (k == "X-Multi" || k == "x-multi") multi.push_back(v);
    CHECK(multi.size() == 2);
    CHECK(multi.at(0) == "a");
    // The connection is left at the body's first byte.
    std::string rest(4, '\0');
    CHECK(conn.sgetn(rest.data(), 4) == 4);
    CHECK(rest == "BODY");

    ResponseHead lf = head_of("HTTP/1.1 404 Not Found Here\nA: b\n\n");
    CHECK(lf.status == 404);
    CHECK(lf.reason == "Not Found Here");
    CHECK(lf.get("A") == "b");
    ResponseHead bare = head_of("HTTP/1.0 204\r\n\r\n");
    CHECK(bare.status == 204);
    CHECK(bare.reason == "");
    CHECK(head_of("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\n\r\n")
              .get("Retry-After") == "120");
}

TEST_CASE("http reader: interim 1xx answers are skipped, up to a limit",
          "[export-downloader][http-reader]") {
    ResponseHead h = head_of(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    CHECK(h.status == 200);
    CHECK_FALSE(h.has("Link"));  // the interim answer's fields are gone
    CHECK(h.get("Content-Length") == "0");

    std::string many;
    for (int i = 0; i < kMaxInterimResponses; ++i)
        many += "HTTP/1.1 100 Continue\r\n\r\n";
    CHECK(head_of(many + "HTTP/1.1 200 OK\r\n\r\n").status == 200);
    Outcome o =
        outcome_of([&] { head_of(many + "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"); });
    CHECK_FALSE(o.final);
    CHECK_THAT(o.what(), Catch::Contains("more than 20 interim (1xx) answers"));
}

TEST_CASE("http reader: a missing or malformed head throws", "[export-downloader][http-reader]") {
    CHECK_THROWS_AS(head_of(""), Poco::Net::NoMessageException);
    for (const char* wire :
         {"HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 abc OK\r\n\r\n", "HTTP/1.1  OK\r\n\r\n",
          "HTTP/1.1 200 OK\rX: y\r\n\r\n", "HTTP/1.1/HTTP/1.1 200 OK\r\n\r\n"}) {
        INFO(wire);
        CHECK_THROWS_AS(head_of(wire), Poco::Exception);
    }
    // Poco's parser skips a field line without a colon.
    CHECK(head_of("HTTP/1.1 200 OK\r\nNo-Colon\r\nA: b\r\n\r\n").get("A") == "b");
}

TEST_CASE("http reader: a head cut off by the connection's close is a retry",
          "[export-downloader][http-reader]") {
    // Wherever it is cut, including where the parser would take what it got
    // (after a whole field line, or before the empty line's LF).
    for (const char* wire :
         {"   \r\n", "HTTP/1.1", "HTTP/1.1 200", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK\r",
          "HTTP/1.1 200 OK\r\n", "HTTP/1.1 200 OK\r\nContent-Le", "HTTP/1.1 200 OK\r\nX: y",
          "HTTP/1.1 200 OK\r\nX: y\r\n", "HTTP/1.1 200 OK\r\nX: y\r\n\r",
          "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"}) {
        INFO(wire);
        Outcome o = outcome_of([&] { head_of(wire); });
        CHECK_FALSE(o.final);
        CHECK(std::string(o.what()) == "the connection closed inside the head of the answer");
    }
    // Closed right after a whole head: the head is whole (the body is the
    // framing's business).
    CHECK(head_of("HTTP/1.1 200 OK\r\nX: y\r\n\r\n").get("X") == "y");
    CHECK(head_of("HTTP/1.1 200 OK\n\n").status == 200);
    // Closed between an interim answer and the real one: no answer at all.
    CHECK_THROWS_AS(head_of("HTTP/1.1 100 Continue\r\n\r\n"), Poco::Net::NoMessageException);
}

TEST_CASE("http reader: an oversize head is refused, not buffered",
          "[export-downloader][http-reader]") {
    const std::string ok = "HTTP/1.1 200 OK\r\n";
    // Poco's limits: reason 512, field name 256, value 8192, 100 fields.
    CHECK(head_of("HTTP/1.1 200 " + std::string(512, 'r') + "\r\n\r\n").reason.size() == 512);
    CHECK_THROWS_AS(head_of("HTTP/1.1 200 " + std::string(513, 'r') + "\r\n\r\n"),
                    Poco::Net::MessageException);
    CHECK(head_of(ok + std::string(256, 'n') + ": v\r\n\r\n").has(std::string(256, 'n')));
    CHECK_THROWS_AS(head_of(ok + std::string(257, 'n') + ": v\r\n\r\n"),
                    Poco::Net::MessageException);
    CHECK(head_of(ok + "X: " + std::string(8192, 'v') + "\r\n\r\n").get("X").size() == 8192);
    CHECK_THROWS_AS(head_of(ok + "X: " + std::string(8193, 'v') + "\r\n\r\n"),
                    Poco::Net::MessageException);
    std::string fields;
    for (int i = 0; i < 100; ++i)
        fields += "F" + std::to_string(i) + ": v\r\n";
    CHECK(head_of(ok + fields + "\r\n").has("F99"));
    CHECK_THROWS_AS(head_of(ok + fields + "F100: v\r\n\r\n"), Poco::Net::MessageException);
    CHECK_THROWS_AS(head_of("HTTP/1.1xxx 200 OK\r\n\r\n"), Poco::Net::MessageException);
}

// ---------------------------------------------------------------------------
// Framing

TEST_CASE("http reader: the framing a head asks for", "[export-downloader][http-reader]") {
    const std::string where = " from https://a.example/x";
    auto framing = [&](std::initializer_list<std::pair<const char*, const char*>> fields,
                       uint64_t max = 100) {
        return body_framing(with_headers(fields), max, where);
    };

    CHECK(framing({}).framing == BodyBuf::Framing::close);
    CHECK(framing({{"Transfer-Encoding", "chunked"}}).framing == BodyBuf::Framing::chunked);
    CHECK(framing({{"transfer-encoding", "  Chunked "}}).framing == BodyBuf::Framing::chunked);
    // Transfer-Encoding wins over Content-Length (RFC 9112 6.3).
    CHECK(framing({{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}}).framing ==
          BodyBuf::Framing::chunked);
    BodyFraming cl = framing({{"Content-Length", "10"}});
    CHECK(cl.framing == BodyBuf::Framing::length);
    CHECK(cl.length == 10);
    CHECK(framing({{"Content-Length", " 7 "}}).length == 7);
    CHECK(framing({{"Content-Length", "0"}}).length == 0);
    CHECK(framing({{"Content-Length", "100"}}).length == 100);  // max_bytes itself is fine
    CHECK(framing({{"Content-Length", "9"}, {"content-length", " 9"}}).length == 9);

    Outcome te = outcome_of([&] { framing({{"Transfer-Encoding", "gzip"}}); });
    CHECK(te.final);
    CHECK(std::string(te.what()) == "unsupported Transfer-Encoding 'gzip'" + where);
    CHECK(outcome_of([&] { framing({{"Transfer-Encoding", "gzip, chunked"}}); }).final);
    CHECK(outcome_of([&] { framing({{"Transfer-Encoding", "chunked, chunked"}}); }).final);
    CHECK_THAT(outcome_of([&] {
                   framing({{"Transfer-Encoding", "x\x01y"}});
               }).what(),
               Catch::Contains("'x?y'"));

    Outcome big = outcome_of([&] { framing({{"Content-Length", "101"}}); });
    CHECK(big.final);
    CHECK(std::string(big.what()) ==
          "the export is too large: Content-Length 101 exceeds max_bytes (100)" + where);

    Outcome conflict = outcome_of([&] {
        framing({{"Content-Length", "5"}, {"Content-Length", "6"}});
    });
    CHECK_FALSE(conflict.final);
    CHECK(std::string(conflict.what()) == "conflicting Content-Length headers" + where);
    for (const char* bad : {"", "-1", "+5", "1e3", "0x10", "5, 5", "5 5", "12345678901234567890",
                            "99999999999999999999999"}) {
        INFO('\'' << bad << '\'');
        Outcome o = outcome_of([&] { framing({{"Content-Length", bad}}, UINT64_MAX); });
        CHECK_FALSE(o.final);
        CHECK(std::string(o.what()) == "a malformed Content-Length" + where);
    }
    // 19 digits is the most taken, then max_bytes decides.
    CHECK(framing({{"Content-Length", "9223372036854775807"}}, UINT64_MAX).length ==
          9223372036854775807ULL);
}

TEST_CASE("http reader: Content-Length bodies", "[export-downloader][http-reader]") {
    const std::string body = "id,name\n1,a\n2,b\n";
    const auto n = static_cast<uint64_t>(body.size());
    CHECK(body_of(body, BodyBuf::Framing::length, n) == body);
    CHECK(body_of(bytes(body), BodyBuf::Framing::length, n) == body);
    // What follows the length is not read.
    CHECK(body_of(body + "EXTRA", BodyBuf::Framing::length, n) == body);
    CHECK(body_of("", BodyBuf::Framing::length, 0) == "");
    CHECK(body_of("ignored", BodyBuf::Framing::length, 0) == "");

    Outcome cut = outcome_of([&] { body_of("abc", BodyBuf::Framing::length, 10); });
    CHECK_FALSE(cut.final);
    CHECK(std::string(cut.what()) ==
          "the body was cut off: the connection closed after 3 of 10 bytes (Content-Length)");
    CHECK_THAT(outcome_of([&] { body_of("", BodyBuf::Framing::length, 1); }).what(),
               Catch::Contains("after 0 of 1 bytes"));
}

TEST_CASE("http reader: chunked bodies", "[export-downloader][http-reader]") {
    using F = BodyBuf::Framing;
    const std::string simple = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    CHECK(body_of(simple, F::chunked) == "hello world");
    CHECK(body_of(bytes(simple), F::chunked) == "hello world");
    uint64_t wire = 0;
    CHECK(body_of(std::vector<std::string>{simple}, F::chunked, 0, 100, &wire) == "hello world");
    CHECK(wire == 11);  // body bytes, not the framing
    // Extensions, upper-case hex, leading zeros, spaces, bare LF.
    CHECK(body_of("5;name=value;x\r\nhello\r\n0;last\r\n\r\n", F::chunked) == "hello");
    CHECK(body_of("A\r\n0123456789\r\n0\r\n\r\n", F::chunked) == "0123456789");
    CHECK(body_of("0005\r\nhello\r\n000\r\n\r\n", F::chunked) == "hello");
    CHECK(body_of("5 \t;ext\r\nhello\r\n0\r\n\r\n", F::chunked) == "hello");
    CHECK(body_of("5\nhello\n0\n\n", F::chunked) == "hello");
    CHECK(body_of("0\r\n\r\n", F::chunked) == "");
    // Trailer fields are read and dropped; what follows is not read.
    CHECK(body_of("3\r\nabc\r\n0\r\nX-Checksum: 1\r\nY: z\r\n\r\nNEXT", F::chunked) == "abc");
    std::string trailers;
    for (int i = 0; i < 101; ++i)
        trailers += "T" + std::to_string(i) + ": v\r\n";
    CHECK(body_of("1\r\na\r\n0\r\n" + trailers + "\r\n", F::chunked) == "a");

    auto retry = [&](const std::string& w) {
        Outcome o = outcome_of([&] { body_of(w, F::chunked); });
        CHECK_FALSE(o.final);
        return std::string(o.what());
    };
    for (const char* size : {"zz", "-5", "", " ", "0x5", "5 5", "+5", "5\x01", ";ext"}) {
        INFO('\'' << size << '\'');
        CHECK_THAT(retry(std::string(size) + "\r\nhello\r\n0\r\n\r\n"),
                   Catch::StartsWith("the chunked encoding is malformed (chunk size '"));
    }
    CHECK_THAT(retry("5\x01\r\nhello\r\n0\r\n\r\n"), Catch::Contains("(chunk size '5?')"));
    // Sizes past 15 hex digits are refused before any arithmetic.
    CHECK_THAT(retry("1000000000000000\r\nx\r\n"), Catch::Contains("malformed (chunk size"));
    CHECK_THAT(retry("ffffffffffffffffffff\r\nx\r\n"), Catch::Contains("malformed (chunk size"));
    CHECK_THAT(retry("5\r\nhelloXX\r\n0\r\n\r\n"), Catch::Contains("no CRLF after a chunk"));
    CHECK_THAT(retry("5\r\nhello0\r\n\r\n"), Catch::Contains("no CRLF after a chunk"));
    CHECK_THAT(retry(std::string(5000, '0') + "5\r\nhello\r\n0\r\n\r\n"),
               Catch::Contains("a chunked-encoding line is too long"));
    CHECK_THAT(retry("1\r\na\r\n0\r\n" + trailers + "T: v\r\n\r\n"),
               Catch::Contains("too many trailer fields"));
    // Cut anywhere: inside a size line, a chunk, before the last chunk, in
    // the trailers.
    for (const std::string& cut :
         {std::string("5"), std::string("5\r\nhel"), std::string("5\r\nhello"),
          std::string("5\r\nhello\r\n"), std::string("5\r\nhello\r\n0\r\n"),
          std::string("5\r\nhello\r\n0\r\nX: y\r\n"), std::string("")}) {
        INFO('\'' << cut << '\'');
        CHECK_THAT(retry(cut),
                   Catch::StartsWith("the body was cut off: the connection closed inside the "
                                     "chunked body after "));
    }
    CHECK_THAT(retry("5\r\nhel"), Catch::EndsWith("after 3 bytes"));
}

TEST_CASE("http reader: close-delimited bodies end with the connection",
          "[export-downloader][http-reader]") {
    const std::string body(1000, 'x');
    CHECK(body_of(body, BodyBuf::Framing::close) == body);
    CHECK(body_of(bytes("a,b\n1,2\n"), BodyBuf::Framing::close) == "a,b\n1,2\n");
    CHECK(body_of("", BodyBuf::Framing::close) == "");
}

TEST_CASE("http reader: the byte budget", "[export-downloader][http-reader]") {
    using F = BodyBuf::Framing;
    CHECK(body_of(std::string(100, 'x'), F::close, 0, 100).size() == 100);
    Outcome close = outcome_of([&] { body_of(std::string(101, 'x'), F::close, 0, 100); });
    CHECK(close.final);
    CHECK(std::string(close.what()) ==
          "the export is too large: its body is more than max_bytes (100) bytes");
    // The limit counts body bytes only, not the chunked framing.
    CHECK(body_of("32\r\n" + std::string(50, 'x') + "\r\n32\r\n" + std::string(50, 'y') +
                      "\r\n0\r\n\r\n",
                  F::chunked, 0, 100)
              .size() == 100);
    CHECK(outcome_of([&] {
              body_of("32\r\n" + std::string(50, 'x') + "\r\n33\r\n" + std::string(51, 'y') +
                          "\r\n0\r\n\r\n",
                      F::chunked, 0, 100);
          }).final);
    // A chunk that claims to be huge is stopped at the limit, not waited for.
    MemoryConnection endless{{"fffffffffffffff\r\n"}};
    endless.at_end = [](Poco::Timespan) -> size_t {
        FAIL("read past the limit");
        return 0;
    };
    Budget budget = generous();
    SocketBuf conn(endless.receive(), budget);
    endless.pieces.push_back(std::string(2000, 'z'));
    BodyBuf body(conn, F::chunked, 0, 1000, 64);
    Outcome huge = outcome_of([&] { read_all(body); });
    CHECK(huge.final);
    CHECK_THAT(huge.what(), Catch::Contains("more than max_bytes (1000)"));
    CHECK(body.wire_bytes() > 1000);
    CHECK(body.wire_bytes() <= 1000 + 64);
}

TEST_CASE("http reader: a failing connection is a retry, a timeout passes as is",
          "[export-downloader][http-reader]") {
    MemoryConnection reset{{"abc"}};
    reset.at_end = [](Poco::Timespan) -> size_t {
        throw Poco::Net::ConnectionResetException("reset by peer");
    };
    Budget budget = generous();
    SocketBuf conn(reset.receive(), budget);
    BodyBuf body(conn, BodyBuf::Framing::close, 0, 100);
    Outcome o = outcome_of([&] { read_all(body); });
    CHECK_FALSE(o.final);
    CHECK_THAT(o.what(), Catch::StartsWith("the connection failed after 3 body bytes: "));
    CHECK_THAT(o.what(), Catch::Contains("reset by peer"));

    MemoryConnection silent{{"HTTP/1.1 200 OK\r\n\r\nabc"}};
    silent.at_end = [](Poco::Timespan) -> size_t { throw Poco::TimeoutException(); };
    SocketBuf conn2(silent.receive(), budget);
    CHECK(read_head(conn2).status == 200);
    BodyBuf body2(conn2, BodyBuf::Framing::close, 0, 100);
    CHECK_THROWS_AS(read_all(body2), Poco::TimeoutException);
    CHECK(body2.wire_bytes() == 3);

    MemoryConnection mute{{"HTTP/1.1 200"}};
    mute.at_end = silent.at_end;
    SocketBuf conn3(mute.receive(), budget);
    CHECK_THROWS_AS(read_head(conn3), Poco::TimeoutException);
}

TEST_CASE("http reader: peek looks at the body without taking it",
          "[export-downloader][http-reader]") {
    const std::string gz("\x1f\x8b\x08\x00rest of it", 14);
    MemoryConnection c{bytes(gz)};
    Budget budget = generous();
    SocketBuf conn(c.receive(), budget, 1);
    BodyBuf body(conn, BodyBuf::Framing::length, gz.size(), 100, 4);
    CHECK(body.peek(2) == std::string_view("\x1f\x8b", 2));
    CHECK(body.peek(2) == std::string_view("\x1f\x8b", 2));
    CHECK(body.peek(4) == std::string_view("\x1f\x8b\x08\x00", 4));
    CHECK(read_all(body) == gz);

    MemoryConnection one{{"x"}};
    SocketBuf conn1(one.receive(), budget);
    BodyBuf short_body(conn1, BodyBuf::Framing::close, 0, 100);
    CHECK(short_body.peek(2) == "x");
    CHECK(read_all(short_body) == "x");
}

// ---------------------------------------------------------------------------
// Time

TEST_CASE("http reader: each wait is the idle limit or what is left of the total",
          "[export-downloader][http-reader]") {
    FakeClock clock;
    Budget b(1000ms, 2500ms, clock.now());
    CHECK(b.idle() == 1000ms);
    CHECK_FALSE(b.expired());
    CHECK(b.next() == Poco::Timespan(0, 1000 * 1000));
    clock.t += 2000ms;
    CHECK(b.next() == Poco::Timespan(0, 500 * 1000));
    CHECK(b.timed_out("https://a.example/x") ==
          "timed out: no answer or data for timeout_ms (1000 ms) from https://a.example/x");
    clock.t += 500ms;
    CHECK(b.expired());
    Outcome o = outcome_of([&] { b.next(); });
    CHECK_FALSE(o.final);
    CHECK(std::string(o.what()) == "the download took longer than max_duration_ms (2500 ms)");
    CHECK(b.timed_out("https://a.example/x") == b.over());
}

TEST_CASE("http reader: a head trickled in slowly runs into max_duration",
          "[export-downloader][http-reader]") {
    FakeClock clock;
    MemoryConnection c{bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")};
    c.clock = &clock;
    c.per_read = 300ms;  // every byte well within the idle limit
    Budget budget(1000ms, 3000ms, clock.now());
    SocketBuf conn(c.receive(), budget);
    Outcome o = outcome_of([&] { read_head(conn); });
    CHECK_FALSE(o.final);
    CHECK(std::string(o.what()) == "the download took longer than max_duration_ms (3000 ms)");
    CHECK(c.next == 10);  // 10 bytes in 3 s, then no more reads
    REQUIRE(c.waits.size() == 10);
    CHECK(c.waits.front() == Poco::Timespan(0, 1000 * 1000));
    CHECK(c.waits.back() == Poco::Timespan(0, 300 * 1000));  // what was left
    for (const auto& w : c.waits)
        CHECK(w <= Poco::Timespan(0, 1000 * 1000));
}

TEST_CASE("http reader: a body trickled in slowly runs into max_duration",
          "[export-downloader][http-reader]") {
    FakeClock clock;
    const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string body = "3e8\r\n" + std::string(1000, 'x') + "\r\n0\r\n\r\n";
    MemoryConnection c{{head}};
    for (const auto& b : bytes(body))
        c.pieces.push_back(b);
    c.clock = &clock;
    c.per_read = 100ms;
    Budget budget(1000ms, 5000ms, clock.now());
    SocketBuf conn(c.receive(), budget);
    ResponseHead h = read_head(conn);  // one read, 100 ms
    BodyFraming f = body_framing(h, 1 << 20, "");
    BodyBuf b(conn, f.framing, f.length, 1 << 20);
    Outcome o = outcome_of([&] { read_all(b); });
    CHECK_FALSE(o.final);
    CHECK(std::string(o.what()) == budget.over());
    // 49 reads after the head's: 5 for "3e8\r\n", 44 body bytes.
    CHECK(b.wire_bytes() == 44);

    // The same answer at full speed passes.
    FakeClock fast_clock;
    MemoryConnection fast{{head, body}};
    Budget fast_budget(1000ms, 5000ms, fast_clock.now());
    SocketBuf fast_conn(fast.receive(), fast_budget);
    read_head(fast_conn);
    BodyBuf fast_body(fast_conn, BodyBuf::Framing::chunked, 0, 1 << 20);
    CHECK(read_all(fast_body) == std::string(1000, 'x'));
}

TEST_CASE("http reader: a silent server times out on the idle limit",
          "[export-downloader][http-reader]") {
    FakeClock clock;
    MemoryConnection c{{"HTTP/1.1 200 OK\r\n\r\nsome"}};
    // A receive with nothing to give waits its whole wait, then times out.
    c.at_end = [&](Poco::Timespan wait) -> size_t {
        clock.t += milliseconds(wait.totalMilliseconds());
        throw Poco::TimeoutException();
    };
    Budget budget(1000ms, 60000ms, clock.now());
    SocketBuf conn(c.receive(), budget);
    read_head(conn);
    BodyBuf body(conn, BodyBuf::Framing::close, 0, 100);
    CHECK_THROWS_AS(read_all(body), Poco::TimeoutException);
    CHECK_FALSE(budget.expired());
    CHECK(budget.timed_out("https://a.example/x") ==
          "timed out: no answer or data for timeout_ms (1000 ms) from https://a.example/x");
    CHECK(clock.t == Clock::time_point{} + 1000ms);
}

// ---------------------------------------------------------------------------
// Retry-After

TEST_CASE("http reader: Retry-After in seconds or as an HTTP date",
          "[export-downloader][http-reader]") {
    // Now: Wed, 21 Oct 2015 07:28:00 GMT.
    const auto now = std::chrono::sys_days(std::chrono::year(2015) / 10 / 21) + 7h + 28min;
    auto after = [&](const std::string& v) { return parse_retry_after(v, now); };
    CHECK(after("120") == milliseconds(120'000));
    CHECK(after("0") == 0ms);
    CHECK(after(" 5 \t") == 5000ms);
    CHECK(after("86400") == kMaxRetryAfter);
    CHECK(after("86401") == kMaxRetryAfter);
    CHECK(after("999999999") == kMaxRetryAfter);
    CHECK(after("99999999999999999999999") == kMaxRetryAfter);  // no overflow
    // IMF-fixdate, and the two obsolete forms a recipient must accept.
    CHECK(after("Wed, 21 Oct 2015 07:28:30 GMT") == 30'000ms);
    CHECK(after("Wednesday, 21-Oct-15 07:29:00 GMT") == 60'000ms);
    CHECK(after("Wed Oct 21 07:30:00 2015") == 120'000ms);
    CHECK(after("Wed, 21 Oct 2015 07:28:00 GMT") == 0ms);
    CHECK(after("Tue, 20 Oct 2015 07:28:00 GMT") == 0ms);  // past: now
    CHECK(after("Thu, 22 Oct 2015 07:28:00 GMT") == kMaxRetryAfter);
    CHECK(after("Fri, 31 Dec 9999 23:59:59 GMT") == kMaxRetryAfter);
    // Not a number of seconds nor an HTTP-date: no Retry-After at all.
    for (const char* v : {"", "   ", "-5", "+5", "1.5", "5 s", "soon", "0x10",
                          "Wed, 32 Oct 2015 07:28:00 GMT", "2015-10-21T07:28:30Z"}) {
        INFO('\'' << v << '\'');
        CHECK_FALSE(after(v));
    }
}

TEST_CASE("http reader: HTTP dates are read strictly", "[export-downloader][http-reader]") {
    using std::chrono::sys_days;
    using std::chrono::year;
    const auto now = sys_days(year(2015) / 10 / 21) + 7h + 28min;
    auto at = [&](const char* v) { return parse_http_date(v, now); };
    const auto nov6 = sys_days(year(1994) / 11 / 6) + 8h + 49min + 37s;
    CHECK(at("Sun, 06 Nov 1994 08:49:37 GMT") == nov6);
    CHECK(at("Sunday, 06-Nov-94 08:49:37 GMT") == nov6);
    CHECK(at("Sun Nov  6 08:49:37 1994") == nov6);
    CHECK(at("Sun Nov 06 08:49:37 1994") == nov6);
    CHECK(at("Mon, 29 Feb 2016 00:00:00 GMT") == sys_days(year(2016) / 2 / 29));
    CHECK(at("Thu, 01 Jan 1970 00:00:00 GMT") == sys_days(year(1970) / 1 / 1));
    CHECK(at("Wed, 31 Dec 2014 23:59:60 GMT") == sys_days(year(2015) / 1 / 1));  // leap second
    // The day name is not checked against the date (RFC 9110 allows that).
    CHECK(at("Mon, 06 Nov 1994 08:49:37 GMT") == nov6);
    // RFC 850's two-digit year: at most 50 years ahead of now, else a century back.
    CHECK(at("Thursday, 01-Jan-15 00:00:00 GMT") == sys_days(year(2015) / 1 / 1));
    CHECK(at("Thursday, 01-Jan-65 00:00:00 GMT") == sys_days(year(2065) / 1 / 1));
    CHECK(at("Thursday, 01-Jan-66 00:00:00 GMT") == sys_days(year(1966) / 1 / 1));
    CHECK(at("Thursday, 01-Jan-00 00:00:00 GMT") == sys_days(year(2000) / 1 / 1));
    for (const char* v : {"Sun, 06 Nov 1994 08:49:37 GMT ",      // trailing text
                          " Sun, 06 Nov 1994 08:49:37 GMT",      // leading text
                          "sun, 06 Nov 1994 08:49:37 GMT",       // case-sensitive
                          "Sun, 06 nov 1994 08:49:37 GMT",       //
                          "Sun, 06 Nov 1994 08:49:37 UTC",       // GMT only
                          "Sun, 06 Nov 1994 08:49:37 +0000",     //
                          "Sun, 6 Nov 1994 08:49:37 GMT",        // two-digit day
                          "Sun, 06 Nov 94 08:49:37 GMT",         // four-digit year
                          "Sun, 06 November 1994 08:49:37 GMT",  //
                          "Sun, 31 Nov 1994 08:49:37 GMT",       // no such day
                          "Sun, 29 Feb 2015 08:49:37 GMT",       // not a leap year
                          "Sun, 00 Nov 1994 08:49:37 GMT",       //
                          "Sun, 06 Nov 1994 24:00:00 GMT",       // no such time
                          "Sun, 06 Nov 1994 08:60:00 GMT",       //
                          "Sun, 06 Nov 1994 08:49:61 GMT",       //
                          "Sun, 06 Nov 1994 8:49:37 GMT",        //
                          "Sun, 06 Nov 1994 08-49-37 GMT",       //
                          "Sun, 06 Nov +994 08:49:37 GMT",       //
                          "Xyz, 06 Nov 1994 08:49:37 GMT",       // no such day name
                          "Sun 06 Nov 1994 08:49:37 GMT",        //
                          "Sunday, 06-Nov-1994 08:49:37 GMT",    // RFC 850 has two digits
                          "Sun, 06-Nov-94 08:49:37 GMT",         // and a long day name
                          "Sunday, 06 Nov 94 08:49:37 GMT",      //
                          "Sunday, 06-Nov-94 08:49:37",          //
                          "Sun Nov  6 08:49:37 94",              // asctime has four
                          "Sun Nov 6 08:49:37 1994",             //
                          "Sun Nov  6 08:49:37 1994 GMT",        //
                          "Sun Nov 31 08:49:37 1994",            //
                          "",
                          "soon",
                          "1994-11-06T08:49:37Z",
                          "784111777"}) {
        INFO('\'' << v << '\'');
        CHECK_FALSE(at(v));
    }
}

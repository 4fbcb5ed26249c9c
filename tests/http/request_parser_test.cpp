// The strict request framing, without sockets: every case a proxy in front
// and this server could disagree on is refused.
#include "http/RequestParser.h"

#include <catch2/catch.hpp>

#include <string>

using namespace clayhook;
using State = HeadParse::State;

namespace {

HeadParse head(const std::string& s) {
    return parse_head(s);
}

// The status of a refused head (0 when it was accepted or is incomplete).
int refused(const std::string& s) {
    HeadParse r = head(s);
    return r.state == State::error ? r.status : 0;
}

const std::string kPost = "POST /webhooks/clay HTTP/1.1\r\nHost: h\r\n";

}  // namespace

TEST_CASE("request head: a plain POST is parsed into method, path, query and fields",
          "[http][parser]") {
    std::string s =
        "POST /webhooks/clay?x=1 HTTP/1.1\r\nHost: h\r\nX-Clay-Signature:  ab \r\n"
        "Content-Length: 12\r\n\r\n{\"a\":\"body\"}";
    HeadParse r = head(s);
    REQUIRE(r.state == State::done);
    CHECK(r.consumed == s.size() - 12);
    const HttpRequest& q = r.head.request;
    CHECK(q.method == "POST");
    CHECK(q.target == "/webhooks/clay?x=1");
    CHECK(q.path == "/webhooks/clay");
    CHECK(q.query == "x=1");
    CHECK(q.minor_version == 1);
    REQUIRE(q.header("x-clay-signature") != nullptr);
    CHECK(*q.header("X-CLAY-SIGNATURE") == "ab");  // names any case, OWS trimmed
    CHECK(r.head.framing == BodyFraming::length);
    CHECK(r.head.content_length == 12);
    CHECK(r.head.keep_alive);
    CHECK_FALSE(r.head.expect_continue);
}

TEST_CASE("request head: every prefix is incomplete, never an error or a guess", "[http][parser]") {
    std::string s = "\r\nPOST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
    for (size_t n = 0; n < s.size(); ++n) {
        INFO("prefix of " << n << " bytes");
        CHECK(head(s.substr(0, n)).state == State::incomplete);
    }
    CHECK(head(s).state == State::done);
}

TEST_CASE("request head: Content-Length with Transfer-Encoding, or two that differ, is refused",
          "[http][parser][smuggling]") {
    CHECK(refused(kPost + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n") == 400);
    CHECK(refused(kPost + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n") == 400);
    CHECK(refused(kPost + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n") == 400);
    CHECK(refused(kPost + "Content-Length: 5, 6\r\n\r\n") == 400);
    // The same value twice is one length.
    HeadParse same = head(kPost + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n");
    REQUIRE(same.state == State::done);
    CHECK(same.head.content_length == 5);
}

TEST_CASE("request head: a malformed Content-Length is 400", "[http][parser]") {
    for (const char* v : {"-1", "+5", "0x10", "5 5", "", "1e3", "99999999999999999999"}) {
        INFO("Content-Length: '" << v << "'");
        CHECK(refused(kPost + "Content-Length: " + v + "\r\n\r\n") == 400);
    }
}

TEST_CASE("request head: any transfer coding but chunked is 400", "[http][parser][smuggling]") {
    for (const char* v : {"xchunked", "chunked, identity", "identity", "gzip, chunked",
                          "chunked, chunked", "chunked,", ",chunked", "chunked;q=1"}) {
        INFO("Transfer-Encoding: '" << v << "'");
        CHECK(refused(kPost + "Transfer-Encoding: " + v + "\r\n\r\n") == 400);
    }
    CHECK(refused(kPost + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n") ==
          400);
    HeadParse ok = head(kPost + "Transfer-Encoding: Chunked\r\n\r\n");
    REQUIRE(ok.state == State::done);
    CHECK(ok.head.framing == BodyFraming::chunked);
    CHECK(refused("POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n") == 400);
}

TEST_CASE("request head: versions, Host, line ends and field syntax", "[http][parser]") {
    CHECK(refused("GET / HTTP/9.9\r\nHost: h\r\n\r\n") == 505);
    CHECK(refused("GET / HTTP/2.0\r\nHost: h\r\n\r\n") == 505);
    CHECK(refused("GET / HTTP/1.10\r\nHost: h\r\n\r\n") == 400);
    CHECK(refused("GET / HTTP/1\r\nHost: h\r\n\r\n") == 400);
    CHECK(refused("GET / http/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(refused("GET  / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(refused("GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(refused("GET / HTTP/1.1\r\n\r\n") == 400);                        // no Host
    CHECK(refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == 400);  // two
    CHECK(refused("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n") == 400);
    CHECK(head("GET / HTTP/1.0\r\n\r\n").state == State::done);  // 1.0 needs none
    CHECK(refused("GET / HTTP/1.1\nHost: h\r\n\r\n") == 400);    // bare LF
    CHECK(refused("GET / HTTP/1.1\r\nHost: h\n\r\n") == 400);
    CHECK(refused("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n") == 400);  // bare CR
    CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  folded\r\n\r\n") == 400);
    CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nX-A : 1\r\n\r\n") == 400);
    CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nX(A): 1\r\n\r\n") == 400);
    CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n") == 400);
    CHECK(refused(std::string("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n", 36)) == 400);
    CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x1b[31m\r\n\r\n") == 400);
    CHECK(refused("G(T / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
}

TEST_CASE("request head: field values are kept byte for byte (no RFC 2047, 0xFF kept)",
          "[http][parser]") {
    std::string encoded = "=?UTF-8?Q?a=0D=0Ab?=";
    HeadParse r = head("GET / HTTP/1.1\r\nHost: h\r\nX-Type: " + encoded +
                       "\r\nX-Bytes: \xff\xfe\xc3\xa9\r\n\r\n");
    REQUIRE(r.state == State::done);
    CHECK(*r.head.request.header("x-type") == encoded);
    CHECK(*r.head.request.header("x-bytes") == "\xff\xfe\xc3\xa9");
}

TEST_CASE("request head: Connection and Expect", "[http][parser]") {
    CHECK_FALSE(head("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").head.keep_alive);
    CHECK_FALSE(head("GET / HTTP/1.0\r\n\r\n").head.keep_alive);
    CHECK(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").head.keep_alive);
    CHECK_FALSE(head("GET / HTTP/1.0\r\nConnection: close, keep-alive\r\n\r\n").head.keep_alive);
    CHECK(head(kPost + "Expect: 100-continue\r\nContent-Length: 1\r\n\r\n").head.expect_continue);
    CHECK(refused(kPost + "Expect: something-else\r\n\r\n") == 417);
}

TEST_CASE("request head: size limits answer 431 and 414", "[http][parser]") {
    HeadLimits limits;
    limits.max_head_bytes = 1024;
    limits.max_target_bytes = 100;
    limits.max_fields = 5;
    std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
    for (int i = 0; i < 5; ++i)
        many += "X-" + std::to_string(i) + ": v\r\n";
    CHECK(parse_head(many + "\r\n", limits).status == 431);
    std::string big = "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(2000, 'a');
    CHECK(parse_head(big, limits).status == 431);  // refused before the head ends
    CHECK(parse_head("GET /" + std::string(200, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", limits)
              .status == 414);
    CHECK(parse_head("GET /" + std::string(200, 'a'), limits).status == 414);
}

namespace {

struct Decoded {
    ChunkedDecoder::Status status;
    std::string body;
    size_t consumed = 0;
};

// Feeds `s` in pieces of `step` bytes, as the socket would.
Decoded decode(const std::string& s, size_t step = 1, uint64_t max = 1 << 20) {
    ChunkedDecoder d(max);
    Decoded out{ChunkedDecoder::Status::more, {}, 0};
    size_t pos = 0;
    while (pos < s.size()) {
        size_t used = 0;
        out.status = d.feed(std::string_view(s).substr(pos, step), used, out.body);
        pos += used;
        out.consumed = pos;
        if (out.status != ChunkedDecoder::Status::more) return out;
        if (used == 0) break;
    }
    return out;
}

}  // namespace

TEST_CASE("chunked body: pieces of any size, extensions and trailers, next request kept",
          "[http][parser][chunked]") {
    std::string body =
        "5;name=\"a;b\\\"c\"\r\nhello\r\nA ; x=1\r\n, chunked!\r\n0\r\n"
        "Trailer-A: 1\r\n\r\n";
    std::string next = "GET /healthz HTTP/1.1\r\n";
    for (size_t step : {size_t(1), size_t(3), size_t(1000)}) {
        INFO("step " << step);
        Decoded d = decode(body + next, step);
        CHECK(d.status == ChunkedDecoder::Status::done);
        CHECK(d.body == "hello, chunked!");
        CHECK(d.consumed == body.size());
    }
}

TEST_CASE("chunked body: an incomplete or malformed body is never complete",
          "[http][parser][chunked]") {
    using S = ChunkedDecoder::Status;
    CHECK(decode("5\r\nhello\r\n").status == S::more);             // no last chunk
    CHECK(decode("5\r\nhello\r\n0\r\n").status == S::more);        // no final CRLF
    CHECK(decode("5\r\nhelloXX0\r\n\r\n").status == S::error);     // data not + CRLF
    CHECK(decode("5\r\nhello\n0\r\n\r\n").status == S::error);     // LF only
    CHECK(decode("zz\r\nhello\r\n0\r\n\r\n").status == S::error);  // bad size
    CHECK(decode("\r\nhello\r\n0\r\n\r\n").status == S::error);    // no size
    CHECK(decode("-5\r\nhello\r\n0\r\n\r\n").status == S::error);
    CHECK(decode("0x5\r\nhello\r\n0\r\n\r\n").status == S::error);
    CHECK(decode("1000000000000000\r\n").status == S::error);           // 16 digits: overflow
    CHECK(decode("5\rhello\r\n0\r\n\r\n").status == S::error);          // size line bare CR
    CHECK(decode("5;a\x01\r\nhello\r\n0\r\n\r\n").status == S::error);  // CTL in extension
    CHECK(decode("5 abc\r\nhello\r\n0\r\n\r\n").status == S::error);    // BWS, then no ';'
    CHECK(decode("5\t\r\nhello\r\n0\r\n\r\n").status == S::error);
    CHECK(decode("5 \t;x=1\r\nhello\r\n0\r\n\r\n").status == S::done);  // BWS before ';' is fine
    CHECK(decode("0\r\nNoColon\r\n\r\n").status == S::error);           // bad trailer
    CHECK(decode("0\r\n folded: x\r\n\r\n").status == S::error);
    CHECK(decode("0\r\nX: a\x7f\r\n\r\n").status == S::error);
}

TEST_CASE("chunked body: past the cap is too_large before the data is read",
          "[http][parser][chunked]") {
    using S = ChunkedDecoder::Status;
    CHECK(decode("5\r\nhello\r\n0\r\n\r\n", 1, 5).status == S::done);
    CHECK(decode("5\r\nhello\r\n1\r\n", 1, 5).status == S::too_large);
    Decoded d = decode("FFFFFFFF\r\n", 100, 1024);
    CHECK(d.status == S::too_large);
    CHECK(d.body.empty());
}

#pragma once

// Strict HTTP/1.1 request framing (RFC 9112), without I/O: the server feeds
// bytes as they arrive, these say whether a request head or a chunked body
// is complete, still incomplete, or broken (with the status to answer).
// Anything ambiguous is an error, never a guess: a proxy in front and this
// server must agree on where every request ends.
//
//   - Request line: `METHOD SP origin-form SP HTTP/d.d CRLF`; HTTP/1.0 and
//     HTTP/1.1 only (another well-formed version: 505). Line ends are CRLF;
//     a bare CR or LF is an error. Empty lines before the request line are
//     skipped (§2.2).
//   - Header fields: `token ":" OWS value OWS`; no whitespace before the
//     colon, no obsolete line folding, no control characters other than
//     HTAB in values. Bytes 0x80-0xFF pass through untouched.
//   - Host: exactly one in HTTP/1.1, at most one in HTTP/1.0.
//   - Framing: Content-Length is digits only; several are accepted only when
//     identical. Transfer-Encoding must be exactly `chunked` and never comes
//     with Content-Length (nor in HTTP/1.0). Everything else: 400.
//   - Expect: only `100-continue` (else 417).

#include "http/HttpMessage.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace clayhook {

struct HeadLimits {
    size_t max_head_bytes = 32 * 1024;   // request line + fields + CRLFs (431 past it)
    size_t max_target_bytes = 8 * 1024;  // 414 past it
    size_t max_fields = 100;             // 431 past it
};

struct RequestHead {
    HttpRequest request;
    BodyFraming framing = BodyFraming::none;
    uint64_t content_length = 0;  // framing == length
    bool keep_alive = true;       // what the client asked for (Connection, version)
    bool expect_continue = false;
};

struct HeadParse {
    enum class State { incomplete, done, error };
    State state = State::incomplete;
    size_t consumed = 0;  // done: bytes of the head, including its final CRLF
    int status = 0;       // error: the status to answer with
    std::string error;    // error: what was wrong (safe to log: no header values)
    RequestHead head;     // done
};

// Parses the request head at the start of `bytes`. `incomplete` means more
// bytes are needed (the head so far is valid); past `limits.max_head_bytes`
// without its end it is an error (431).
HeadParse parse_head(std::string_view bytes, const HeadLimits& limits = {});

// A chunked body (RFC 9112 §7.1), fed in pieces of any size. Chunk
// extensions are checked and ignored; trailer fields are checked and
// dropped (never merged into the headers).
class ChunkedDecoder {
  public:
    enum class Status { more, done, error, too_large };

    explicit ChunkedDecoder(uint64_t max_body) : max_body_(max_body) {}

    // Consumes from `in` (sets `consumed`), appends the decoded data to
    // `out`. `done`: the body ended, and `consumed` is where the next
    // request starts. `too_large`: the body would pass `max_body` (a chunk's
    // declared size counts before its data arrives).
    Status feed(std::string_view in, size_t& consumed, std::string& out);
    const std::string& error() const { return error_; }
    uint64_t decoded() const { return decoded_; }

  private:
    enum class Phase {
        size,
        size_ws,
        ext,
        size_lf,
        data,
        data_cr,
        data_lf,
        trailer,
        trailer_lf,
        done
    };
    Status fail(std::string why);

    uint64_t max_body_;
    uint64_t decoded_ = 0;
    uint64_t remaining_ = 0;  // of the current chunk's data
    Phase phase_ = Phase::size;
    size_t digits_ = 0;      // of the current chunk size
    size_t line_bytes_ = 0;  // of the current size line or trailer line (bounded)
    size_t trailer_bytes_ = 0;
    bool trailer_value_ = false;  // past the colon of a trailer field
    bool in_quotes_ = false;      // inside a quoted chunk-ext value
    bool escaped_ = false;
    std::string error_;
};

}  // namespace clayhook

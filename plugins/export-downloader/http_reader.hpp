// Reading an HTTP/1.1 answer for the export-downloader: the connection's
// bytes under a byte and time budget, the status line and header fields, the
// body's framing (Content-Length, chunked or until the connection closes,
// truncation detected) and Retry-After.
//
// Everything reads from a std::streambuf, so the reader can be fed from a
// socket (SocketBuf over receive_from) or from memory, with a clock that a
// test drives.
#pragma once

#include <Poco/Net/NameValueCollection.h>
#include <Poco/Timespan.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <streambuf>
#include <string>
#include <string_view>
#include <vector>

namespace Poco::Net {
class StreamSocket;
}

namespace clayhook::exportdl {

using Clock = std::chrono::steady_clock;

inline constexpr size_t kBufferSize = 64 * 1024;
// The longest Retry-After honoured; a longer one is cut to this.
inline constexpr std::chrono::milliseconds kMaxRetryAfter{24 * 3600 * 1000};
// Interim (1xx) answers skipped before the real one; more is a retry.
inline constexpr int kMaxInterimResponses = 20;

// Time: each wait is bounded by `idle` (timeout_ms), and the whole attempt by
// `total` (max_duration_ms), counted from the Budget's making.
class Budget {
  public:
    using Now = std::function<Clock::time_point()>;

    // From Clock::now().
    Budget(std::chrono::milliseconds idle, std::chrono::milliseconds total);
    // From `now` (a test's clock).
    Budget(std::chrono::milliseconds idle, std::chrono::milliseconds total, Now now);

    bool expired() const { return now_() >= deadline_; }
    // How long the next wait may last: the idle limit or what is left of the
    // total, whichever is shorter. Throws a retry (over()) when nothing is left.
    Poco::Timespan next() const;
    // The reason when the total ran out.
    std::string over() const;
    // The reason for a wait that timed out (Poco::TimeoutException) while
    // reading from `from`: over() when the total ran out, else the idle limit.
    std::string timed_out(const std::string& from) const;
    std::chrono::milliseconds idle() const { return idle_; }

  private:
    std::chrono::milliseconds idle_;
    std::chrono::milliseconds total_;
    Now now_;
    Clock::time_point deadline_;
};

// Where a SocketBuf's bytes come from: up to `cap` bytes into `out`, waiting
// at most `wait` for the first; 0 at the end of the stream. Throws
// Poco::TimeoutException when nothing came in time, another Poco::Exception
// when the connection failed.
using Receive = std::function<size_t(char* out, size_t cap, Poco::Timespan wait)>;

// A socket's receiveBytes with its receive timeout set to each wait.
Receive receive_from(Poco::Net::StreamSocket& socket);

// The connection as a buffered streambuf; every read is bounded by the budget.
class SocketBuf : public std::streambuf {
  public:
    SocketBuf(Receive receive, const Budget& budget, size_t buffer_size = kBufferSize);
    SocketBuf(Poco::Net::StreamSocket& socket, const Budget& budget);

  protected:
    int_type underflow() override;

  private:
    Receive receive_;
    const Budget& budget_;
    std::vector<char> buf_;
};

// Up to `want` bytes of what `src` has, waiting for at most one read; 0 at
// its end.
size_t read_some(std::streambuf& src, char* out, size_t want);

// The status line and header fields of an answer.
struct ResponseHead {
    int status = 0;
    std::string reason;
    Poco::Net::NameValueCollection headers;  // names case-insensitive, repeats kept

    bool has(const std::string& name) const { return headers.has(name); }
    std::string get(const std::string& name, const std::string& fallback = "") const {
        return headers.get(name, fallback);
    }
};

// Reads the head of the answer from `conn` (Poco's parser: version at most 8
// characters, a 3-digit status, a reason of at most 512, at most 100 fields,
// names of at most 256 and values of at most 8192 characters), skipping
// interim 1xx answers, at most kMaxInterimResponses of them (more is a
// retry). Leaves `conn` at the first byte of the body. Throws
// Poco::Net::NoMessageException when the connection closes before the first
// byte, a retry when it closes inside the head (before its empty line),
// another Poco::Exception for a malformed head, and whatever `conn` throws
// (a retry when the budget runs out, Poco::TimeoutException).
ResponseHead read_head(std::streambuf& conn);

// The body of a response: Content-Length, chunked or until the connection
// closes. A body cut short or malformed framing throws a retry; more than
// `limit` bytes on the wire throws a refusal. A Poco::Exception from `src`
// becomes a retry, except Poco::TimeoutException, which passes (reported
// with the time limits in force: Budget::timed_out).
class BodyBuf : public std::streambuf {
  public:
    enum class Framing { length, chunked, close };

    BodyBuf(std::streambuf& src, Framing framing, uint64_t length, uint64_t limit,
            size_t buffer_size = kBufferSize);

    // Body bytes received so far, framing excluded.
    uint64_t wire_bytes() const { return wire_; }

    // The first n bytes of the body (fewer if it is shorter), not consumed.
    std::string_view peek(size_t n);

  protected:
    int_type underflow() override;

  private:
    size_t fetch(char* out, size_t cap);
    size_t fetch_framed(char* out, size_t cap);
    [[noreturn]] void cut_chunked() const;
    std::string line();
    void expect_empty_line();
    static uint64_t chunk_size(const std::string& l);

    std::streambuf& src_;
    Framing framing_;
    uint64_t remaining_;  // of the Content-Length, or of the current chunk
    uint64_t limit_;
    uint64_t wire_ = 0;
    bool done_ = false;
    bool started_ = false;
    std::vector<char> buf_;
};

struct BodyFraming {
    BodyBuf::Framing framing = BodyBuf::Framing::close;
    uint64_t length = 0;  // for Framing::length
};

// How the body of a 200 answer is delimited: chunked (the only
// Transfer-Encoding taken), else Content-Length, else the connection's close.
// Refuses another Transfer-Encoding or a Content-Length above `max_bytes`;
// a malformed or conflicting Content-Length is a retry. `where` (" from
// https://host/path") ends each reason.
BodyFraming body_framing(const ResponseHead& head, uint64_t max_bytes, const std::string& where);

// An HTTP-date (RFC 9110 5.6.7), strictly: IMF-fixdate ("Sun, 06 Nov 1994
// 08:49:37 GMT"), or one of the obsolete forms a recipient must accept, RFC
// 850 ("Sunday, 06-Nov-94 08:49:37 GMT", its two-digit year the latest one
// not more than 50 years after `now`) and asctime ("Sun Nov  6 08:49:37
// 1994"). nullopt for anything else, an impossible date included.
std::optional<std::chrono::sys_seconds> parse_http_date(std::string_view text,
                                                        std::chrono::system_clock::time_point now);

// Retry-After: delay-seconds or an HTTP-date, as a wait from `now`, at most
// kMaxRetryAfter; 0 for a date in the past; nullopt when empty or unreadable.
std::optional<std::chrono::milliseconds> parse_retry_after(
    const std::string& value,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

}  // namespace clayhook::exportdl

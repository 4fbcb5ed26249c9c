#include "http_reader.hpp"

#include "outcome.hpp"
#include "text.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/String.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <istream>
#include <iterator>
#include <utility>

namespace clayhook::exportdl {

using std::chrono::milliseconds;

// ---------------------------------------------------------------------------
// Budget

// A lambda, not Clock::now itself: std::function would then hold a function
// pointer of a std type, whose type_info the .so would export.
Budget::Budget(milliseconds idle, milliseconds total)
    : Budget(idle, total, [] { return Clock::now(); }) {}

Budget::Budget(milliseconds idle, milliseconds total, Now now)
    : idle_(idle), total_(total), now_(std::move(now)), deadline_(now_() + total) {}

Poco::Timespan Budget::next() const {
    auto left = std::chrono::duration_cast<milliseconds>(deadline_ - now_());
    if (left <= milliseconds(0)) try_later(over());
    auto ms = std::min(left, idle_);
    return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(ms.count()) * 1000);
}

std::string Budget::over() const {
    return "the download took longer than max_duration_ms (" + std::to_string(total_.count()) +
           " ms)";
}

std::string Budget::timed_out(const std::string& from) const {
    if (expired()) return over();
    return "timed out: no answer or data for timeout_ms (" + std::to_string(idle_.count()) +
           " ms) from " + from;
}

// ---------------------------------------------------------------------------
// The connection

Receive receive_from(Poco::Net::StreamSocket& socket) {
    return [&socket](char* out, size_t cap, Poco::Timespan wait) -> size_t {
        socket.setReceiveTimeout(wait);
        int n = socket.receiveBytes(out, static_cast<int>(cap));
        return n <= 0 ? 0 : static_cast<size_t>(n);
    };
}

SocketBuf::SocketBuf(Receive receive, const Budget& budget, size_t buffer_size)
    : receive_(std::move(receive)), budget_(budget), buf_(std::max<size_t>(buffer_size, 1)) {}

SocketBuf::SocketBuf(Poco::Net::StreamSocket& socket, const Budget& budget)
    : SocketBuf(receive_from(socket), budget) {}

SocketBuf::int_type SocketBuf::underflow() {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    size_t n = receive_(buf_.data(), buf_.size(), budget_.next());
    if (n == 0) return traits_type::eof();
    setg(buf_.data(), buf_.data(), buf_.data() + std::min(n, buf_.size()));
    return traits_type::to_int_type(*gptr());
}

size_t read_some(std::streambuf& src, char* out, size_t want) {
    if (src.sgetc() == std::streambuf::traits_type::eof()) return 0;
    std::streamsize avail = src.in_avail();
    auto n = static_cast<std::streamsize>(
        std::min(want, static_cast<size_t>(std::max<std::streamsize>(avail, 1))));
    return static_cast<size_t>(src.sgetn(out, n));
}

// ---------------------------------------------------------------------------
// The head

namespace {

// `src` passed through unbuffered, noting whether its end was reached. A
// complete head ends with an empty line, which Poco's parser reads up to its
// LF and no further: a head read that meets the end of the connection was
// cut off, even where the parser itself would take what it got.
class EndWatch : public std::streambuf {
  public:
    explicit EndWatch(std::streambuf& src) : src_(src) {}
    bool hit_end() const { return end_; }

  protected:
    int_type underflow() override { return note(src_.sgetc()); }
    int_type uflow() override { return note(src_.sbumpc()); }
    int_type pbackfail(int_type c) override {
        if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::eof();
        return src_.sputbackc(traits_type::to_char_type(c));
    }

  private:
    int_type note(int_type c) {
        if (traits_type::eq_int_type(c, traits_type::eof())) end_ = true;
        return c;
    }

    std::streambuf& src_;
    bool end_ = false;
};

}  // namespace

ResponseHead read_head(std::streambuf& conn) {
    EndWatch watch(conn);
    std::istream in(&watch);
    in.exceptions(std::ios::badbit);  // what `conn` throws comes out as thrown
    Poco::Net::HTTPResponse resp;
    for (int interim = 0;; ++interim) {
        resp.clear();
        try {
            resp.read(in);
        } catch (const Poco::Net::NoMessageException&) {
            throw;  // closed before the first byte
        } catch (const Poco::Exception&) {
            if (!watch.hit_end()) throw;
        } catch (const std::ios_base::failure&) {
            if (!watch.hit_end()) throw;
        }
        if (watch.hit_end()) try_later("the connection closed inside the head of the answer");
        if (resp.getStatus() < 100 || resp.getStatus() >= 200) break;
        if (interim >= kMaxInterimResponses)
            try_later("more than " + std::to_string(kMaxInterimResponses) +
                      " interim (1xx) answers before the real one");
    }
    ResponseHead head;
    head.status = static_cast<int>(resp.getStatus());
    head.reason = resp.getReason();
    head.headers = static_cast<const Poco::Net::NameValueCollection&>(resp);
    return head;
}

// ---------------------------------------------------------------------------
// The body

BodyBuf::BodyBuf(std::streambuf& src, Framing framing, uint64_t length, uint64_t limit,
                 size_t buffer_size)
    : src_(src),
      framing_(framing),
      remaining_(length),
      limit_(limit),
      buf_(std::max<size_t>(buffer_size, 1)) {}

std::string_view BodyBuf::peek(size_t n) {
    size_t have = gptr() == nullptr ? 0 : static_cast<size_t>(egptr() - gptr());
    if (have < n) {
        if (have > 0) std::memmove(buf_.data(), gptr(), have);
        while (have < n && have < buf_.size()) {
            size_t got = fetch(buf_.data() + have, buf_.size() - have);
            if (got == 0) break;
            have += got;
        }
        setg(buf_.data(), buf_.data(), buf_.data() + have);
    }
    return {gptr(), std::min(have, n)};
}

BodyBuf::int_type BodyBuf::underflow() {
    if (gptr() != nullptr && gptr() < egptr()) return traits_type::to_int_type(*gptr());
    size_t got = fetch(buf_.data(), buf_.size());
    if (got == 0) return traits_type::eof();
    setg(buf_.data(), buf_.data(), buf_.data() + got);
    return traits_type::to_int_type(*gptr());
}

size_t BodyBuf::fetch(char* out, size_t cap) {
    if (done_) return 0;
    size_t got = 0;
    try {
        got = fetch_framed(out, cap);
    } catch (const Poco::TimeoutException&) {
        throw;  // reported with the time limits in force
    } catch (const Poco::Exception& e) {
        try_later("the connection failed after " + std::to_string(wire_) +
                  " body bytes: " + e.displayText());
    }
    wire_ += got;
    if (wire_ > limit_)
        refuse("the export is too large: its body is more than max_bytes (" +
               std::to_string(limit_) + ") bytes");
    return got;
}

size_t BodyBuf::fetch_framed(char* out, size_t cap) {
    switch (framing_) {
        case Framing::length: {
            if (remaining_ == 0) {
                done_ = true;
                return 0;
            }
            size_t got =
                read_some(src_, out, static_cast<size_t>(std::min<uint64_t>(cap, remaining_)));
            if (got == 0)
                try_later("the body was cut off: the connection closed after " +
                          std::to_string(wire_) + " of " + std::to_string(wire_ + remaining_) +
                          " bytes (Content-Length)");
            remaining_ -= got;
            return got;
        }
        case Framing::chunked: {
            if (remaining_ == 0) {
                if (started_) expect_empty_line();
                started_ = true;
                uint64_t size = chunk_size(line());
                if (size == 0) {
                    for (int i = 0; !line().empty(); ++i)  // trailer fields
                        if (i > 100) try_later("too many trailer fields after a chunked body");
                    done_ = true;
                    return 0;
                }
                remaining_ = size;
            }
            size_t got =
                read_some(src_, out, static_cast<size_t>(std::min<uint64_t>(cap, remaining_)));
            if (got == 0) cut_chunked();
            remaining_ -= got;
            return got;
        }
        case Framing::close:
            break;
    }
    size_t got = read_some(src_, out, cap);
    if (got == 0) done_ = true;
    return got;
}

void BodyBuf::cut_chunked() const {
    try_later("the body was cut off: the connection closed inside the chunked body after " +
              std::to_string(wire_) + " bytes");
}

// One line (without CR LF) of the chunked framing.
std::string BodyBuf::line() {
    std::string s;
    for (;;) {
        int c = src_.sbumpc();
        if (c == traits_type::eof()) cut_chunked();
        if (c == '\n') break;
        if (s.size() > 4096) try_later("a chunked-encoding line is too long");
        s += static_cast<char>(c);
    }
    if (!s.empty() && s.back() == '\r') s.pop_back();
    return s;
}

void BodyBuf::expect_empty_line() {
    if (!line().empty()) try_later("the chunked encoding is malformed (no CRLF after a chunk)");
}

uint64_t BodyBuf::chunk_size(const std::string& l) {
    std::string hex = trim(l.substr(0, l.find(';')));
    if (hex.empty() || hex.size() > 15 || !std::all_of(hex.begin(), hex.end(), [](char c) {
            return std::isxdigit(static_cast<unsigned char>(c));
        }))
        try_later("the chunked encoding is malformed (chunk size '" + printable(hex) + "')");
    return std::stoull(hex, nullptr, 16);
}

BodyFraming body_framing(const ResponseHead& head, uint64_t max_bytes, const std::string& where) {
    BodyFraming f;
    if (head.has("Transfer-Encoding")) {
        if (lower(trim(head.get("Transfer-Encoding"))) != "chunked")
            refuse("unsupported Transfer-Encoding '" + printable(head.get("Transfer-Encoding")) +
                   "'" + where);
        f.framing = BodyBuf::Framing::chunked;
    } else if (head.has("Content-Length")) {
        std::string cl = trim(head.get("Content-Length"));
        for (const auto& [k, v] : head.headers)
            if (Poco::icompare(k, "Content-Length") == 0 && trim(v) != cl)
                try_later("conflicting Content-Length headers" + where);
        if (!all_digits(cl) || cl.size() > 19) try_later("a malformed Content-Length" + where);
        f.length = std::stoull(cl);
        f.framing = BodyBuf::Framing::length;
        if (f.length > max_bytes)
            refuse("the export is too large: Content-Length " + std::to_string(f.length) +
                   " exceeds max_bytes (" + std::to_string(max_bytes) + ")" + where);
    }
    return f;
}

// ---------------------------------------------------------------------------
// Retry-After

namespace {

using std::chrono::system_clock;

constexpr std::string_view kDayNames[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::string_view kLongDayNames[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                              "Friday", "Saturday", "Sunday"};
constexpr std::string_view kMonthNames[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

template <size_t N>
bool one_of(std::string_view s, const std::string_view (&names)[N]) {
    return std::find(std::begin(names), std::end(names), s) != std::end(names);
}

// Exactly these digits, as a number.
std::optional<int> digits(std::string_view s) {
    if (!all_digits(s) || s.size() > 4) return std::nullopt;
    int v = 0;
    for (char c : s)
        v = v * 10 + (c - '0');
    return v;
}

std::optional<unsigned> month_of(std::string_view s) {
    auto it = std::find(std::begin(kMonthNames), std::end(kMonthNames), s);
    if (it == std::end(kMonthNames)) return std::nullopt;
    return static_cast<unsigned>(it - std::begin(kMonthNames)) + 1;
}

// "HH:MM:SS"
std::optional<std::chrono::seconds> time_of_day(std::string_view s) {
    if (s.size() != 8 || s[2] != ':' || s[5] != ':') return std::nullopt;
    auto h = digits(s.substr(0, 2)), m = digits(s.substr(3, 2)), sec = digits(s.substr(6, 2));
    if (!h || !m || !sec || *h > 23 || *m > 59 || *sec > 60) return std::nullopt;
    return std::chrono::hours(*h) + std::chrono::minutes(*m) + std::chrono::seconds(*sec);
}

std::optional<std::chrono::sys_seconds> instant(std::optional<int> year,
                                                std::optional<unsigned> month,
                                                std::optional<int> day,
                                                std::optional<std::chrono::seconds> time) {
    if (!year || !month || !day || !time) return std::nullopt;
    std::chrono::year_month_day ymd{std::chrono::year(*year), std::chrono::month(*month),
                                    std::chrono::day(static_cast<unsigned>(*day))};
    if (!ymd.ok()) return std::nullopt;
    return std::chrono::sys_days(ymd) + *time;
}

}  // namespace

std::optional<std::chrono::sys_seconds> parse_http_date(std::string_view v,
                                                        system_clock::time_point now) {
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    if (v.size() == 29 && one_of(v.substr(0, 3), kDayNames) && v.substr(3, 2) == ", " &&
        v[7] == ' ' && v[11] == ' ' && v[16] == ' ' && v.substr(25) == " GMT")
        return instant(digits(v.substr(12, 4)), month_of(v.substr(8, 3)), digits(v.substr(5, 2)),
                       time_of_day(v.substr(17, 8)));
    // asctime: "Sun Nov  6 08:49:37 1994" (the day may also be "06")
    if (v.size() == 24 && one_of(v.substr(0, 3), kDayNames) && v[3] == ' ' && v[7] == ' ' &&
        v[10] == ' ' && v[19] == ' ') {
        std::string_view day = v.substr(8, 2);
        if (day[0] == ' ') day.remove_prefix(1);
        return instant(digits(v.substr(20, 4)), month_of(v.substr(4, 3)), digits(day),
                       time_of_day(v.substr(11, 8)));
    }
    // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
    size_t comma = v.find(',');
    if (comma == std::string_view::npos || !one_of(v.substr(0, comma), kLongDayNames))
        return std::nullopt;
    std::string_view rest = v.substr(comma);
    if (rest.size() != 24 || rest.substr(0, 2) != ", " || rest[4] != '-' || rest[8] != '-' ||
        rest[11] != ' ' || rest.substr(20) != " GMT")
        return std::nullopt;
    auto yy = digits(rest.substr(9, 2));
    std::optional<int> year;
    if (yy) {
        int this_year = static_cast<int>(
            std::chrono::year_month_day(std::chrono::floor<std::chrono::days>(now)).year());
        year = this_year / 100 * 100 + *yy;
        if (*year > this_year + 50) *year -= 100;
    }
    return instant(year, month_of(rest.substr(5, 3)), digits(rest.substr(2, 2)),
                   time_of_day(rest.substr(12, 8)));
}

std::optional<milliseconds> parse_retry_after(const std::string& value,
                                              system_clock::time_point now) {
    std::string v = trim(value);
    if (v.empty()) return std::nullopt;
    if (all_digits(v)) {
        if (v.size() > 9) return kMaxRetryAfter;
        return std::min(milliseconds(std::stoll(v) * 1000), kMaxRetryAfter);
    }
    auto date = parse_http_date(v, now);
    if (!date) return std::nullopt;
    // In milliseconds: system_clock's nanoseconds do not reach the year 9999.
    auto when = std::chrono::time_point_cast<milliseconds>(*date);
    auto from = std::chrono::time_point_cast<milliseconds>(now);
    if (when <= from) return milliseconds(0);
    return std::min(when - from, kMaxRetryAfter);
}

}  // namespace clayhook::exportdl

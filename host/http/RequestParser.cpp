#include "http/RequestParser.h"

#include <algorithm>
#include <vector>

namespace clayhook {

namespace {

// RFC 9110 §5.6.2: tchar.
bool is_tchar(unsigned char c) {
    if (c >= '0' && c <= '9') return true;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
    switch (c) {
        case '!':
        case '#':
        case '$':
        case '%':
        case '&':
        case '\'':
        case '*':
        case '+':
        case '-':
        case '.':
        case '^':
        case '_':
        case '`':
        case '|':
        case '~':
            return true;
        default:
            return false;
    }
}

bool is_token(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return is_tchar(static_cast<unsigned char>(c));
    });
}

// A field value byte: VCHAR, SP, HTAB or obs-text (0x80-0xFF). No other
// control character, DEL included.
bool is_field_byte(unsigned char c) {
    return c == '\t' || (c >= 0x20 && c != 0x7F);
}

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

char ascii_lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c | 0x20) : c;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return ascii_lower(x) == ascii_lower(y);
           });
}

std::vector<std::string_view> split_list(std::string_view s) {
    std::vector<std::string_view> out;
    size_t start = 0;
    while (true) {
        size_t comma = s.find(',', start);
        out.push_back(trim_ows(s.substr(
            start, comma == std::string_view::npos ? std::string_view::npos : comma - start)));
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    return out;
}

HeadParse error(int status, std::string why) {
    HeadParse r;
    r.state = HeadParse::State::error;
    r.status = status;
    r.error = std::move(why);
    return r;
}

HeadParse incomplete() {
    return HeadParse{};
}

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return &v;
    return nullptr;
}

HeadParse parse_head(std::string_view b, const HeadLimits& limits) {
    size_t pos = 0;
    // §2.2: at least one empty line before the request line is ignored.
    while (b.size() - pos >= 2 && b[pos] == '\r' && b[pos + 1] == '\n')
        pos += 2;
    if (pos > 8) return error(400, "empty lines before the request line");

    // One line from `pos`: its text (without CRLF), or incomplete/error.
    enum class Line { ok, more, bad };
    auto next_line = [&](std::string_view& line) -> Line {
        size_t lf = b.find('\n', pos);
        std::string_view text = b.substr(pos, lf == std::string_view::npos ? b.npos : lf - pos);
        // A CR anywhere but right before the LF is a bare CR.
        size_t cr = text.find('\r');
        if (cr != std::string_view::npos && !(lf != b.npos && cr == text.size() - 1)) {
            if (lf == b.npos && cr == text.size() - 1) return Line::more;  // CR, LF to come
            return Line::bad;
        }
        if (lf == std::string_view::npos) return Line::more;
        if (text.empty() || text.back() != '\r') return Line::bad;  // bare LF
        line = text.substr(0, text.size() - 1);
        pos = lf + 1;
        return Line::ok;
    };
    auto too_big = [&]() { return b.size() > limits.max_head_bytes; };

    // Request line.
    std::string_view line;
    switch (next_line(line)) {
        case Line::more: {
            std::string_view partial = b.substr(pos);
            // A request line can be refused before it ends: a bad method, or
            // a target already past its limit.
            size_t sp = partial.find(' ');
            std::string_view method = partial.substr(0, std::min(sp, partial.find('\r')));
            if (!method.empty() && !is_token(method)) return error(400, "malformed request line");
            if (sp != partial.npos && partial.size() - sp > limits.max_target_bytes + 16)
                return error(414, "request target too long");
            if (too_big()) return error(431, "request head too large");
            return incomplete();
        }
        case Line::bad:
            return error(400, "malformed line end in the request line");
        case Line::ok:
            break;
    }
    RequestHead head;
    HttpRequest& req = head.request;
    {
        size_t sp1 = line.find(' ');
        if (sp1 == line.npos) return error(400, "malformed request line");
        size_t sp2 = line.find(' ', sp1 + 1);
        if (sp2 == line.npos) return error(400, "malformed request line");
        std::string_view method = line.substr(0, sp1);
        std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
        std::string_view version = line.substr(sp2 + 1);
        if (!is_token(method)) return error(400, "malformed method");
        if (target.size() > limits.max_target_bytes) return error(414, "request target too long");
        if (target.empty() || !std::all_of(target.begin(), target.end(), [](char c) {
                auto u = static_cast<unsigned char>(c);
                return u > 0x20 && u < 0x7F;
            }))
            return error(400, "malformed request target");
        if (target.front() != '/') return error(400, "only origin-form request targets are served");
        if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
            version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9')
            return error(400, "malformed HTTP version");
        if (version[5] != '1' || (version[7] != '0' && version[7] != '1'))
            return error(505, "HTTP version not supported");
        req.method = method;
        req.target = target;
        size_t q = target.find('?');
        req.path = target.substr(0, q);
        if (q != target.npos) req.query = target.substr(q + 1);
        req.minor_version = version[7] - '0';
    }

    // Header fields, up to the empty line.
    while (true) {
        switch (next_line(line)) {
            case Line::more:
                if (too_big()) return error(431, "request head too large");
                return incomplete();
            case Line::bad:
                return error(400, "malformed line end in the header fields");
            case Line::ok:
                break;
        }
        if (pos > limits.max_head_bytes) return error(431, "request head too large");
        if (line.empty()) break;
        if (line.front() == ' ' || line.front() == '\t')
            return error(400, "obsolete line folding in the header fields");
        size_t colon = line.find(':');
        if (colon == line.npos) return error(400, "header field without a colon");
        std::string_view name = line.substr(0, colon);
        if (!is_token(name)) return error(400, "malformed header field name");
        std::string_view value = trim_ows(line.substr(colon + 1));
        if (!std::all_of(value.begin(), value.end(),
                         [](char c) { return is_field_byte(static_cast<unsigned char>(c)); }))
            return error(400, "control character in a header field value");
        if (req.headers.size() >= limits.max_fields) return error(431, "too many header fields");
        std::string lower(name);
        for (char& c : lower)
            c = ascii_lower(c);
        req.headers.emplace_back(std::move(lower), std::string(value));
    }

    // What the fields say about framing and the connection.
    int hosts = 0;
    bool has_length = false, has_te = false, close = false, keep_alive = false;
    std::string te;
    for (const auto& [name, value] : req.headers) {
        if (name == "host") {
            ++hosts;
        } else if (name == "content-length") {
            if (value.empty() || value.size() > 18 ||
                !std::all_of(value.begin(), value.end(),
                             [](char c) { return c >= '0' && c <= '9'; }))
                return error(400, "malformed Content-Length");
            uint64_t n = std::stoull(value);
            if (has_length && n != head.content_length)
                return error(400, "differing Content-Length values");
            has_length = true;
            head.content_length = n;
        } else if (name == "transfer-encoding") {
            has_te = true;
            if (!te.empty()) te += ',';
            te += value;
        } else if (name == "connection") {
            for (std::string_view option : split_list(value)) {
                close = close || iequals(option, "close");
                keep_alive = keep_alive || iequals(option, "keep-alive");
            }
        } else if (name == "expect") {
            if (!iequals(value, "100-continue")) return error(417, "unsupported expectation");
            head.expect_continue = true;
        }
    }
    if (req.minor_version == 1 && hosts != 1)
        return error(400, hosts == 0 ? "no Host header" : "more than one Host header");
    if (hosts > 1) return error(400, "more than one Host header");
    // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes it
    // unless asked to keep it.
    head.keep_alive = !close && (req.minor_version == 1 || keep_alive);
    if (has_te) {
        if (req.minor_version == 0) return error(400, "Transfer-Encoding in an HTTP/1.0 request");
        if (has_length) return error(400, "both Content-Length and Transfer-Encoding");
        auto codings = split_list(te);
        if (codings.size() != 1 || !iequals(codings[0], "chunked"))
            return error(400, "Transfer-Encoding other than chunked");
        head.framing = BodyFraming::chunked;
    } else if (has_length) {
        head.framing = BodyFraming::length;
    }

    HeadParse r;
    r.state = HeadParse::State::done;
    r.consumed = pos;
    r.head = std::move(head);
    return r;
}

ChunkedDecoder::Status ChunkedDecoder::fail(std::string why) {
    error_ = std::move(why);
    phase_ = Phase::done;
    return Status::error;
}

ChunkedDecoder::Status ChunkedDecoder::feed(std::string_view in, size_t& consumed,
                                            std::string& out) {
    constexpr size_t kMaxLine = 4096;     // a chunk-size line with its extensions
    constexpr size_t kMaxTrailer = 8192;  // all trailer fields together
    consumed = 0;
    if (!error_.empty()) return Status::error;
    size_t i = 0;
    while (i < in.size()) {
        auto c = static_cast<unsigned char>(in[i]);
        switch (phase_) {
            case Phase::size: {
                int v = -1;
                if (c >= '0' && c <= '9') v = c - '0';
                if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
                if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
                if (v >= 0) {
                    if (++digits_ > 15) return fail("chunk size too long");
                    remaining_ = remaining_ * 16 + static_cast<uint64_t>(v);
                } else if (digits_ > 0 && c == ';') {
                    phase_ = Phase::ext;
                    in_quotes_ = escaped_ = false;
                } else if (digits_ > 0 && (c == ' ' || c == '\t')) {
                    phase_ = Phase::size_ws;  // BWS, which only a ';' may follow
                } else if (digits_ > 0 && c == '\r') {
                    phase_ = Phase::size_lf;
                } else {
                    return fail("malformed chunk size");
                }
                ++i;
                if (++line_bytes_ > kMaxLine) return fail("chunk size line too long");
                break;
            }
            case Phase::size_ws:
                if (c == ';') {
                    phase_ = Phase::ext;
                    in_quotes_ = escaped_ = false;
                } else if (c != ' ' && c != '\t') {
                    return fail("whitespace after a chunk size not followed by ';'");
                }
                ++i;
                if (++line_bytes_ > kMaxLine) return fail("chunk size line too long");
                break;
            case Phase::ext: {
                if (in_quotes_) {
                    if (escaped_)
                        escaped_ = false;
                    else if (c == '\\')
                        escaped_ = true;
                    else if (c == '"')
                        in_quotes_ = false;
                    if (c != '\t' && (c < 0x20 || c == 0x7F))
                        return fail("control character in a chunk extension");
                } else if (c == '\r') {
                    phase_ = Phase::size_lf;
                } else if (c == '"') {
                    in_quotes_ = true;
                } else if (!(is_tchar(c) || c == ';' || c == '=' || c == ' ' || c == '\t')) {
                    return fail("malformed chunk extension");
                }
                ++i;
                if (++line_bytes_ > kMaxLine) return fail("chunk size line too long");
                break;
            }
            case Phase::size_lf:
                if (c != '\n') return fail("chunk size line not ended by CRLF");
                ++i;
                line_bytes_ = 0;
                if (remaining_ == 0) {
                    phase_ = Phase::trailer;
                } else {
                    if (remaining_ > max_body_ - std::min(max_body_, decoded_)) {
                        consumed = i;
                        phase_ = Phase::done;
                        error_ = "body too large";
                        return Status::too_large;
                    }
                    phase_ = Phase::data;
                }
                break;
            case Phase::data: {
                size_t n = static_cast<size_t>(
                    std::min<uint64_t>(remaining_, static_cast<uint64_t>(in.size() - i)));
                out.append(in.data() + i, n);
                i += n;
                remaining_ -= n;
                decoded_ += n;
                if (remaining_ == 0) phase_ = Phase::data_cr;
                break;
            }
            case Phase::data_cr:
                if (c != '\r') return fail("chunk data not followed by CRLF");
                ++i;
                phase_ = Phase::data_lf;
                break;
            case Phase::data_lf:
                if (c != '\n') return fail("chunk data not followed by CRLF");
                ++i;
                phase_ = Phase::size;
                digits_ = 0;
                remaining_ = 0;
                line_bytes_ = 0;
                break;
            case Phase::trailer:
                // A trailer field is `token ":" value`; the empty line ends the body.
                if (c == '\r' && (line_bytes_ == 0 || trailer_value_)) {
                    phase_ = Phase::trailer_lf;
                } else if (trailer_value_) {
                    if (!is_field_byte(c)) return fail("control character in the trailer");
                } else if (c == ':' && line_bytes_ > 0) {
                    trailer_value_ = true;
                } else if (!is_tchar(c)) {
                    return fail("malformed trailer field");
                }
                ++i;
                ++line_bytes_;
                if (++trailer_bytes_ > kMaxTrailer) return fail("trailer too large");
                break;
            case Phase::trailer_lf:
                if (c != '\n') return fail("trailer line not ended by CRLF");
                ++i;
                if (line_bytes_ == 1) {  // only the CR: the empty line that ends the body
                    phase_ = Phase::done;
                    consumed = i;
                    return Status::done;
                }
                line_bytes_ = 0;
                trailer_value_ = false;
                phase_ = Phase::trailer;
                break;
            case Phase::done:
                consumed = i;
                return Status::done;
        }
    }
    consumed = i;
    return phase_ == Phase::done ? Status::done : Status::more;
}

}  // namespace clayhook

// Same folder, not "intake/...": bench/json_bench.cpp compiles this file in
// (its target links only the SDK).
#include "intake/JsonFields.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <system_error>
#include <unordered_map>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// Every rule below mirrors one of plugin-api/include/clayhook/json.hpp (the
// SDK's reader and writer), in the same order, with the same messages: a
// change there must be made here too, and the differential tests say where.

namespace clayhook::intake {

namespace {

constexpr std::size_t kMaxDepth = 256;  // json::detail::kMaxDepth
constexpr std::size_t kGroup = 64;      // paths looked up per pass (bits of a mask)

bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The UTF-8 bytes of a code point (at most 4) into buf; how many.
std::size_t encode_utf8(char* buf, std::uint32_t cp) noexcept {
    auto put = [](std::uint32_t byte) { return static_cast<char>(byte); };
    if (cp < 0x80) {
        buf[0] = put(cp);
        return 1;
    }
    if (cp < 0x800) {
        buf[0] = put(0xC0 | (cp >> 6));
        buf[1] = put(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        buf[0] = put(0xE0 | (cp >> 12));
        buf[1] = put(0x80 | ((cp >> 6) & 0x3F));
        buf[2] = put(0x80 | (cp & 0x3F));
        return 3;
    }
    buf[0] = put(0xF0 | (cp >> 18));
    buf[1] = put(0x80 | ((cp >> 12) & 0x3F));
    buf[2] = put(0x80 | ((cp >> 6) & 0x3F));
    buf[3] = put(0x80 | (cp & 0x3F));
    return 4;
}

void append_utf8(std::string& out, std::uint32_t cp) {
    char buf[4];
    out.append(buf, encode_utf8(buf, cp));
}

// The decimal exponent of a number literal, as json::detail::literal_overflows
// estimates it: |value| < 10^e, and >= 10^(e-1) unless it is zero
// (`significant` false).
long long decimal_exponent(std::string_view lit, bool& significant) noexcept {
    long long magnitude = 0;
    significant = false;
    bool fraction = false;
    std::size_t i = lit[0] == '-' ? 1 : 0;
    for (; i < lit.size() && lit[i] != 'e' && lit[i] != 'E'; ++i) {
        if (lit[i] == '.') {
            fraction = true;
        } else if (!significant && lit[i] == '0') {
            magnitude -= fraction ? 1 : 0;
        } else {
            significant = true;
            magnitude += fraction ? 0 : 1;
        }
    }
    long long exponent = 0;
    bool negative = false;
    for (++i; i < lit.size(); ++i) {
        if (lit[i] == '-') negative = true;
        if (is_digit(lit[i]) && exponent < 1'000'000'000) exponent = exponent * 10 + (lit[i] - '0');
    }
    return magnitude + (negative ? -exponent : exponent);
}

// Whether the SDK keeps a (grammatical) number literal: it refuses one whose
// double from_chars finds out of range when literal_overflows (the decimal
// exponent above) says too large rather than too small. from_chars is only
// asked near the edges of double's range (or for a long literal): from 1e-300
// to 1e300 it cannot fail.
bool number_in_range(std::string_view lit) noexcept {
    bool significant = false;
    const long long e = decimal_exponent(lit, significant);
    if (!significant || (lit.size() <= 64 && e > -300 && e < 300)) return true;
    double d = 0;
    if (std::from_chars(lit.data(), lit.data() + lit.size(), d).ec == std::errc{}) return true;
    return e <= 0;  // too small is zero; too large is refused
}

// json::detail::append_value for a number literal the reader accepted: an
// integer literal that fits int64_t as that integer, anything else as the
// shortest text of its double ("-0" included, so that its sign survives).
void append_number(std::string& out, std::string_view lit) {
    const char* first = lit.data();
    const char* last = lit.data() + lit.size();
    char buf[32];
    const bool integral = lit.find_first_of(".eE") == std::string_view::npos;
    std::int64_t i = 0;
    if (integral && lit != "-0" && std::from_chars(first, last, i).ec == std::errc{}) {
        auto r = std::to_chars(buf, buf + sizeof buf, i);
        out.append(buf, r.ptr);
        return;
    }
    double d = 0;
    if (std::from_chars(first, last, d).ec != std::errc{}) d = lit[0] == '-' ? -0.0 : 0.0;
    if (!std::isfinite(d)) {
        out += "null";
        return;
    }
    auto r = std::to_chars(buf, buf + sizeof buf, d);
    out.append(buf, r.ptr);
}

// The code point of the escape at raw[i] ('\\'), which the reader accepted;
// i moves past it (and past the low half of a surrogate pair).
std::uint32_t read_escape(std::string_view raw, std::size_t& i) noexcept {
    auto hex4 = [&raw](std::size_t at) {
        std::uint32_t cp = 0;
        for (std::size_t k = at; k < at + 4 && k < raw.size(); ++k)
            cp = (cp << 4) | static_cast<std::uint32_t>(std::max(hex_value(raw[k]), 0));
        return cp;
    };
    const char c = i + 1 < raw.size() ? raw[i + 1] : 'u';
    i += 2;
    switch (c) {
        case 'b':
            return '\b';
        case 'f':
            return '\f';
        case 'n':
            return '\n';
        case 'r':
            return '\r';
        case 't':
            return '\t';
        case 'u':
            break;
        default:  // '"', '\\', '/'
            return static_cast<unsigned char>(c);
    }
    std::uint32_t cp = hex4(i);
    i += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        const std::uint32_t low = hex4(i + 2);
        i += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    return cp;
}

// One decoded character written the way json::detail::append_quoted writes it.
void append_quoted_cp(std::string& out, std::uint32_t cp) {
    switch (cp) {
        case '"':
            out += "\\\"";
            return;
        case '\\':
            out += "\\\\";
            return;
        case '\b':
            out += "\\b";
            return;
        case '\f':
            out += "\\f";
            return;
        case '\n':
            out += "\\n";
            return;
        case '\r':
            out += "\\r";
            return;
        case '\t':
            out += "\\t";
            return;
        default:
            break;
    }
    if (cp < 0x20) {
        const char* digits = "0123456789abcdef";
        out += "\\u00";
        out.push_back(digits[(cp >> 4) & 0xF]);
        out.push_back(digits[cp & 0xF]);
        return;
    }
    append_utf8(out, cp);
}

// The contents of a string literal the reader accepted (between its quotes),
// decoded (Quoted: false) or re-escaped as the SDK writes strings (true). Bytes
// outside escapes are printable ASCII or valid UTF-8, which both keep as is.
template <bool Quoted>
void transcode(std::string& out, std::string_view raw) {
    std::size_t i = 0;
    while (i < raw.size()) {
        const std::size_t slash = raw.find('\\', i);
        const std::size_t stop = slash == std::string_view::npos ? raw.size() : slash;
        out.append(raw.substr(i, stop - i));
        i = stop;
        if (i >= raw.size()) break;
        const std::uint32_t cp = read_escape(raw, i);
        if constexpr (Quoted) {
            append_quoted_cp(out, cp);
        } else {
            append_utf8(out, cp);
        }
    }
}

// A decoded key against a wanted name, without decoding it into a buffer.
bool escaped_equals(std::string_view raw, std::string_view want) {
    std::size_t i = 0;
    std::size_t w = 0;
    char buf[4];
    while (i < raw.size()) {
        if (raw[i] != '\\') {
            if (w >= want.size() || want[w] != raw[i]) return false;
            ++i;
            ++w;
            continue;
        }
        const std::size_t n = encode_utf8(buf, read_escape(raw, i));
        if (want.size() - w < n || want.compare(w, n, std::string_view(buf, n)) != 0) return false;
        w += n;
    }
    return w == want.size();
}

// The first byte at or after `i` that is not plain printable ASCII: a quote,
// a backslash, a control or part of a multi-byte character. The bulk of a
// body's bytes go through here.
std::size_t plain_run(const char* s, std::size_t n, std::size_t i) noexcept {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    for (; i + 16 <= n; i += 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
        // Signed: below 0x20 is a control or (negative) a byte >= 0x80.
        const __m128i hit =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                         _mm_cmplt_epi8(v, space));
        const int mask = _mm_movemask_epi8(hit);
        if (mask != 0)
            return i + static_cast<std::size_t>(std::countr_zero(static_cast<unsigned>(mask)));
    }
#endif
    if constexpr (std::endian::native == std::endian::little) {
        constexpr std::uint64_t ones = 0x0101010101010101ULL;
        constexpr std::uint64_t highs = 0x8080808080808080ULL;
        for (; i + 8 <= n; i += 8) {
            std::uint64_t x;
            std::memcpy(&x, s + i, 8);
            const std::uint64_t q = x ^ (ones * '"');
            const std::uint64_t b = x ^ (ones * '\\');
            // Per byte: zero (a quote, a backslash), below 0x20, or high bit
            // set. Borrows only flag bytes above a real hit, so the lowest
            // flag is exact.
            const std::uint64_t hit =
                ((q - ones) & ~q) | ((b - ones) & ~b) | ((x - ones * 0x20) & ~x) | x;
            if ((hit & highs) != 0)
                return i + static_cast<std::size_t>(std::countr_zero(hit & highs) >> 3);
        }
    }
    for (; i < n; ++i) {
        const auto byte = static_cast<unsigned char>(s[i]);
        if (byte == '"' || byte == '\\' || byte < 0x20 || byte >= 0x80) break;
    }
    return i;
}

bool is_ws(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// What went wrong, for the message (built only then, out of the hot path).
enum class Problem : std::uint8_t {
    end_expected_value,
    expected_value,
    trailing_bytes,
    literal,
    too_deep,
    array_separator,
    array_trailing_comma,
    object_key,
    object_colon,
    object_separator,
    object_trailing_comma,
    digit_after_minus,
    leading_zero,
    digit_after_point,
    digit_in_exponent,
    out_of_range,
    unterminated,
    control,
    bad_escape,
    bad_hex,
    low_surrogate,
    high_surrogate,
    utf8_lead,
    utf8_truncated,
    utf8_invalid,
};

}  // namespace

// One pass over a body: json::detail::Parser's grammar and checks, building
// nothing; up to 64 paths (paths_[first, first+count)) followed as a bit mask
// of the paths that lead to the value being read.
class FieldScanner {
  public:
    FieldScanner(std::string_view text, const FieldPaths& paths, std::size_t first,
                 std::size_t count, Field* out, JsonError& error) noexcept
        : s_(text.data()),
          n_(text.size()),
          paths_(paths.paths_.data() + first),
          count_(count),
          out_(out),
          error_(error) {}

    bool run() {
        skip_ws();
        const std::uint64_t all =
            count_ >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << count_) - 1;
        if (!value(0, all)) return false;
        skip_ws();
        if (pos_ != n_) return fail(Problem::trailing_bytes, pos_);
        return true;
    }

  private:
    using Paths = const FieldPaths::Path*;

    // The SDK's message for `what` at `at`, with its line and column.
    [[gnu::cold, gnu::noinline]] bool fail(Problem what, std::size_t at) {
        const std::string_view text(s_, n_);
        auto describe = [&text](std::size_t i) {
            if (i >= text.size()) return std::string("end of input");
            const auto byte = static_cast<unsigned char>(text[i]);
            if (byte >= 0x20 && byte < 0x7F) return std::string("'") + text[i] + "'";
            const char* digits = "0123456789ABCDEF";
            return std::string("byte 0x") + digits[byte >> 4] + digits[byte & 0xF];
        };
        std::string m;
        switch (what) {
            case Problem::end_expected_value:
                m = "unexpected end of input, expected a value";
                break;
            case Problem::expected_value:
                m = "expected a value, found " + describe(at);
                break;
            case Problem::trailing_bytes:
                m = "unexpected " + describe(at) + " after the JSON value";
                break;
            case Problem::literal:
                m = std::string("invalid literal, expected '") +
                    (text[at] == 't'   ? "true"
                     : text[at] == 'f' ? "false"
                                       : "null") +
                    "'";
                break;
            case Problem::too_deep:
                m = "nesting deeper than " + std::to_string(kMaxDepth) + " levels";
                break;
            case Problem::array_separator:
                m = "expected ',' or ']' in array, found " + describe(at);
                break;
            case Problem::array_trailing_comma:
                m = "trailing comma in array";
                break;
            case Problem::object_key:
                m = "expected a string key in object, found " + describe(at);
                break;
            case Problem::object_colon:
                m = "expected ':' after object key, found " + describe(at);
                break;
            case Problem::object_separator:
                m = "expected ',' or '}' in object, found " + describe(at);
                break;
            case Problem::object_trailing_comma:
                m = "trailing comma in object";
                break;
            case Problem::digit_after_minus:
                m = "expected a digit after '-', found " + describe(at);
                break;
            case Problem::leading_zero:
                m = "leading zeros are not allowed in numbers";
                break;
            case Problem::digit_after_point:
                m = "expected a digit after the decimal point";
                break;
            case Problem::digit_in_exponent:
                m = "expected a digit in the exponent";
                break;
            case Problem::out_of_range:
                m = "number out of range";
                break;
            case Problem::unterminated:
                m = "unterminated string";
                break;
            case Problem::control:
                m = "unescaped control character (" + describe(at) + ") in string";
                break;
            case Problem::bad_escape:
                m = "invalid escape character " + describe(at + 1) + " after '\\'";
                break;
            case Problem::bad_hex:
                m = "invalid \\u escape, expected 4 hex digits";
                break;
            case Problem::low_surrogate:
                m = "unpaired low surrogate in \\u escape";
                break;
            case Problem::high_surrogate:
                m = "unpaired high surrogate in \\u escape";
                break;
            case Problem::utf8_lead:
                m = "invalid UTF-8 (" + describe(at) + ") in string";
                break;
            case Problem::utf8_truncated:
                m = "truncated UTF-8 sequence in string";
                break;
            case Problem::utf8_invalid:
                m = "invalid UTF-8 sequence in string";
                break;
        }
        std::size_t line = 1;
        std::size_t line_start = 0;
        for (std::size_t i = 0; i < at && i < n_; ++i) {
            if (s_[i] == '\n') {
                ++line;
                line_start = i + 1;
            }
        }
        error_.message = std::move(m);
        error_.offset = at;
        error_.line = line;
        error_.column = at - line_start + 1;
        return false;
    }

    bool peek_is(char c) const noexcept { return pos_ < n_ && s_[pos_] == c; }
    bool peek_digit() const noexcept { return pos_ < n_ && is_digit(s_[pos_]); }

    void skip_digits() noexcept {
        while (peek_digit())
            ++pos_;
    }

    void skip_ws() noexcept {
        while (pos_ < n_ && is_ws(s_[pos_]))
            ++pos_;
    }

    // The value at pos_, `depth` containers deep; `mask`: the paths whose
    // first `depth` segments led here.
    bool value(std::size_t depth, std::uint64_t mask) {
        if (pos_ >= n_) return fail(Problem::end_expected_value, pos_);
        const std::size_t start = pos_;
        Kind kind;
        bool escaped = false;
        switch (s_[pos_]) {
            case '{':
                kind = Kind::Object;
                if (!object(depth + 1, mask)) return false;
                break;
            case '[':
                kind = Kind::Array;
                if (!array(depth + 1, mask)) return false;
                break;
            case '"':
                kind = Kind::String;
                if (!string(escaped)) return false;
                break;
            case 't':
                kind = Kind::Bool;
                if (!literal("true")) return false;
                break;
            case 'f':
                kind = Kind::Bool;
                if (!literal("false")) return false;
                break;
            case 'n':
                kind = Kind::Null;
                if (!literal("null")) return false;
                break;
            default:
                if (s_[pos_] != '-' && !is_digit(s_[pos_]))
                    return fail(Problem::expected_value, pos_);
                kind = Kind::Number;
                if (!number()) return false;
        }
        for (std::uint64_t m = mask; m != 0; m &= m - 1) {
            const int p = std::countr_zero(m);
            if (paths_[p].segments.size() == depth)
                out_[p] = Field{true, kind, escaped, start, pos_};
        }
        return true;
    }

    bool literal(std::string_view word) {
        if (n_ - pos_ < word.size() || std::memcmp(s_ + pos_, word.data(), word.size()) != 0)
            return fail(Problem::literal, pos_);
        pos_ += word.size();
        return true;
    }

    bool array(std::size_t depth, std::uint64_t mask) {
        if (depth > kMaxDepth) return fail(Problem::too_deep, pos_);
        ++pos_;
        skip_ws();
        if (peek_is(']')) {
            ++pos_;
            return true;
        }
        const std::size_t seg = depth - 1;  // the segment an element's index is held against
        for (std::size_t index = 0;; ++index) {
            std::uint64_t sub = 0;
            for (std::uint64_t m = mask; m != 0; m &= m - 1) {
                const int p = std::countr_zero(m);
                const auto& segs = paths_[p].segments;
                if (segs.size() > seg && segs[seg].index == index) sub |= std::uint64_t{1} << p;
            }
            if (!value(depth, sub)) return false;
            skip_ws();
            if (peek_is(']')) {
                ++pos_;
                return true;
            }
            if (!peek_is(',')) return fail(Problem::array_separator, pos_);
            const std::size_t comma = pos_++;
            skip_ws();
            if (peek_is(']')) return fail(Problem::array_trailing_comma, comma);
        }
    }

    bool object(std::size_t depth, std::uint64_t mask) {
        if (depth > kMaxDepth) return fail(Problem::too_deep, pos_);
        const std::size_t seg = depth - 1;  // the segment a member's name is held against
        std::uint64_t deeper = 0;           // the paths that go on into a member
        for (std::uint64_t m = mask; m != 0; m &= m - 1) {
            const int p = std::countr_zero(m);
            if (paths_[p].segments.size() > seg) deeper |= std::uint64_t{1} << p;
        }
        ++pos_;
        skip_ws();
        if (peek_is('}')) {
            ++pos_;
            return true;
        }
        for (;;) {
            if (!peek_is('"')) return fail(Problem::object_key, pos_);
            const std::size_t key_start = pos_;
            bool escaped = false;
            if (!string(escaped)) return false;
            std::uint64_t sub = 0;
            if (deeper != 0) sub = match(deeper, seg, key_start, escaped);
            skip_ws();
            if (!peek_is(':')) return fail(Problem::object_colon, pos_);
            ++pos_;
            skip_ws();
            // A later duplicate key replaces the value (last one wins): what
            // was found under the earlier one is forgotten.
            for (std::uint64_t m = sub; m != 0; m &= m - 1)
                out_[std::countr_zero(m)] = Field{};
            if (!value(depth, sub)) return false;
            skip_ws();
            if (peek_is('}')) {
                ++pos_;
                return true;
            }
            if (!peek_is(',')) return fail(Problem::object_separator, pos_);
            const std::size_t comma = pos_++;
            skip_ws();
            if (peek_is('}')) return fail(Problem::object_trailing_comma, comma);
        }
    }

    // The paths of `deeper` whose segment `seg` names the member whose name
    // (a string literal) starts at `key_start` and ends at pos_.
    std::uint64_t match(std::uint64_t deeper, std::size_t seg, std::size_t key_start,
                        bool escaped) const {
        const std::string_view key(s_ + key_start + 1, pos_ - key_start - 2);
        std::uint64_t sub = 0;
        for (std::uint64_t m = deeper; m != 0; m &= m - 1) {
            const int p = std::countr_zero(m);
            const std::string& name = paths_[p].segments[seg].name;
            if (escaped ? escaped_equals(key, name) : key == name) sub |= std::uint64_t{1} << p;
        }
        return sub;
    }

    bool number() {
        const std::size_t start = pos_;
        if (peek_is('-')) ++pos_;
        if (!peek_digit()) return fail(Problem::digit_after_minus, pos_);
        if (s_[pos_] == '0') {
            ++pos_;
            if (peek_digit()) return fail(Problem::leading_zero, pos_);
        }
        skip_digits();
        bool plain = pos_ - start <= 18;  // an integer of up to 18 digits: in range
        if (peek_is('.')) {
            plain = false;
            ++pos_;
            if (!peek_digit()) return fail(Problem::digit_after_point, pos_);
            skip_digits();
        }
        if (peek_is('e') || peek_is('E')) {
            plain = false;
            ++pos_;
            if (peek_is('+') || peek_is('-')) ++pos_;
            if (!peek_digit()) return fail(Problem::digit_in_exponent, pos_);
            skip_digits();
        }
        if (!plain && !number_in_range(std::string_view(s_ + start, pos_ - start)))
            return fail(Problem::out_of_range, start);
        return true;
    }

    bool string(bool& escaped) {
        const std::size_t open = pos_;
        std::size_t i = pos_ + 1;
        for (;;) {
            i = plain_run(s_, n_, i);
            if (i >= n_) {
                pos_ = i;
                return fail(Problem::unterminated, open);
            }
            const auto byte = static_cast<unsigned char>(s_[i]);
            if (byte == '"') {
                pos_ = i + 1;
                return true;
            }
            pos_ = i;
            if (byte == '\\') {
                escaped = true;
                if (!escape(open)) return false;
            } else if (byte < 0x20) {
                return fail(Problem::control, pos_);
            } else if (!utf8()) {
                return false;
            }
            i = pos_;
        }
    }

    bool escape(std::size_t open) {
        const std::size_t start = pos_++;
        if (pos_ >= n_) return fail(Problem::unterminated, open);
        const char c = s_[pos_++];
        switch (c) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                return true;
            case 'u':
                break;
            default:
                return fail(Problem::bad_escape, start);
        }
        std::uint32_t cp = 0;
        if (!hex4(start, cp)) return false;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(Problem::low_surrogate, start);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (n_ - pos_ < 2 || s_[pos_] != '\\' || s_[pos_ + 1] != 'u')
                return fail(Problem::high_surrogate, start);
            const std::size_t low_start = pos_;
            pos_ += 2;
            std::uint32_t low = 0;
            if (!hex4(low_start, low)) return false;
            if (low < 0xDC00 || low > 0xDFFF) return fail(Problem::high_surrogate, start);
        }
        return true;
    }

    bool hex4(std::size_t escape_start, std::uint32_t& cp) {
        for (int i = 0; i < 4; ++i) {
            const int h = pos_ >= n_ ? -1 : hex_value(s_[pos_]);
            if (h < 0) return fail(Problem::bad_hex, escape_start);
            cp = (cp << 4) | static_cast<std::uint32_t>(h);
            ++pos_;
        }
        return true;
    }

    // One multi-byte UTF-8 sequence, held to RFC 3629 as the SDK holds it.
    bool utf8() {
        const std::size_t start = pos_;
        const auto lead = static_cast<unsigned char>(s_[pos_]);
        const std::size_t len = lead >= 0xC2 && lead <= 0xDF   ? 2
                                : lead >= 0xE0 && lead <= 0xEF ? 3
                                : lead >= 0xF0 && lead <= 0xF4 ? 4
                                                               : 0;
        if (len == 0) return fail(Problem::utf8_lead, start);
        const std::uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
        std::uint32_t cp = lead & (0x7Fu >> len);
        for (std::size_t i = 1; i < len; ++i) {
            const std::uint32_t byte =
                start + i < n_ ? static_cast<unsigned char>(s_[start + i]) : 0u;
            if ((byte & 0xC0u) != 0x80u) return fail(Problem::utf8_truncated, start);
            cp = (cp << 6) | (byte & 0x3Fu);
        }
        if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return fail(Problem::utf8_invalid, start);
        pos_ = start + len;
        return true;
    }

    const char* s_;
    std::size_t n_;
    std::size_t pos_ = 0;
    Paths paths_;
    std::size_t count_;
    Field* out_;
    JsonError& error_;
};

const char* kind_name(Kind k) noexcept {
    static constexpr const char* names[] = {"null", "bool", "number", "string", "array", "object"};
    return names[static_cast<std::size_t>(k)];
}

std::size_t FieldPaths::add(std::string_view dotted) {
    Path p;
    p.text = std::string(dotted);
    // Value::at_path's walk: "a.b" is a, b; "a." is a; "" is no segment.
    while (!dotted.empty()) {
        const std::size_t dot = dotted.find('.');
        const std::string_view seg = dotted.substr(0, dot);
        dotted = dot == std::string_view::npos ? std::string_view{} : dotted.substr(dot + 1);
        Segment s;
        s.name = std::string(seg);
        std::size_t index = 0;
        auto [end, ec] = std::from_chars(seg.data(), seg.data() + seg.size(), index);
        if (ec == std::errc{} && end == seg.data() + seg.size() && seg[0] != '+') s.index = index;
        p.segments.push_back(std::move(s));
    }
    paths_.push_back(std::move(p));
    return paths_.size() - 1;
}

std::string JsonError::what() const {
    return "json: " + message + " at line " + std::to_string(line) + ", column " +
           std::to_string(column);
}

bool extract(std::string_view body, const FieldPaths& paths, std::vector<Field>& out,
             JsonError& error) {
    out.assign(paths.size(), Field{});
    // Past 64 paths, one more pass per 64: each validates the same body the
    // same way, so only the first can fail.
    std::size_t first = 0;
    do {
        const std::size_t count = std::min(kGroup, paths.size() - first);
        FieldScanner scan(body, paths, first, count, out.data() + first, error);
        if (!scan.run()) return false;
        first += count;
    } while (first < paths.size());
    return true;
}

bool validate(std::string_view body, JsonError& error) {
    static const FieldPaths none;
    FieldScanner scan(body, none, 0, 0, nullptr, error);
    return scan.run();
}

std::string string_value(std::string_view body, const Field& f) {
    if (!f.found || f.kind != Kind::String || f.end - f.begin < 2) return {};
    const std::string_view inner = body.substr(f.begin + 1, f.end - f.begin - 2);
    if (!f.escaped) return std::string(inner);
    std::string out;
    out.reserve(inner.size());
    transcode<false>(out, inner);
    return out;
}

namespace {

// Canonical text of values the reader accepted: json::dump of what the SDK
// would have built, straight from the bytes.
class Canonicaliser {
  public:
    explicit Canonicaliser(std::string_view text) noexcept : text_(text) {}

    void value(std::string& out) {
        skip_ws();
        if (pos_ >= text_.size()) return;
        const char c = text_[pos_];
        if (c == '{') {
            object(out);
        } else if (c == '[') {
            array(out);
        } else if (c == '"') {
            string(out);
        } else if (c == 't' || c == 'n') {
            out.append(text_.substr(pos_, 4));
            pos_ += 4;
        } else if (c == 'f') {
            out.append(text_.substr(pos_, 5));
            pos_ += 5;
        } else {
            const std::size_t start = pos_;
            while (pos_ < text_.size() &&
                   (is_digit(text_[pos_]) || text_[pos_] == '-' || text_[pos_] == '+' ||
                    text_[pos_] == '.' || text_[pos_] == 'e' || text_[pos_] == 'E')) {
                ++pos_;
            }
            if (pos_ == start) {  // not what the reader accepted: stop
                pos_ = text_.size();
                return;
            }
            append_number(out, text_.substr(start, pos_ - start));
        }
    }

  private:
    void skip_ws() noexcept {
        while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                       text_[pos_] == '\n' || text_[pos_] == '\r')) {
            ++pos_;
        }
    }

    // Past the separator at pos_ (':' or ','); false at the closing `close`
    // (consumed) or the end.
    bool next(char close) {
        skip_ws();
        if (pos_ >= text_.size()) return false;
        const char c = text_[pos_++];
        return c != close;
    }

    void string(std::string& out) {
        const std::size_t open = pos_++;
        while (pos_ < text_.size() && text_[pos_] != '"')
            pos_ += text_[pos_] == '\\' ? 2 : 1;
        pos_ = std::min(pos_, text_.size());
        const std::string_view inner = text_.substr(open + 1, pos_ - open - 1);
        if (pos_ < text_.size()) ++pos_;
        out.push_back('"');
        transcode<true>(out, inner);
        out.push_back('"');
    }

    void array(std::string& out) {
        out.push_back('[');
        ++pos_;
        skip_ws();
        if (pos_ < text_.size() && text_[pos_] == ']') {
            ++pos_;
        } else {
            bool first = true;
            do {
                if (!first) out.push_back(',');
                first = false;
                value(out);
            } while (next(']'));
        }
        out.push_back(']');
    }

    // Members in the order their names first appear, each with its last
    // value, as the SDK's reader keeps duplicates. Written straight out; an
    // object that had a duplicate is put together again from its pieces.
    void object(std::string& out) {
        const std::size_t start = out.size();
        out.push_back('{');
        ++pos_;
        skip_ws();
        if (pos_ < text_.size() && text_[pos_] == '}') {
            ++pos_;
            out.push_back('}');
            return;
        }
        struct Piece {
            std::size_t name, name_end, value, value_end;  // offsets in `out`
        };
        std::vector<Piece> pieces;
        std::unordered_map<std::string, std::size_t> index;  // name → piece, past 16 members
        bool duplicate = false;
        for (;;) {
            skip_ws();
            if (pos_ >= text_.size() || text_[pos_] != '"') break;
            if (!pieces.empty()) out.push_back(',');
            Piece piece{};
            piece.name = out.size();
            string(out);  // the quoted text is one to one with the decoded name
            piece.name_end = out.size();
            out.push_back(':');
            next(':');
            piece.value = out.size();
            value(out);
            piece.value_end = out.size();

            const std::string_view name(out.data() + piece.name, piece.name_end - piece.name);
            std::size_t found = pieces.size();
            if (pieces.size() < 16) {
                for (std::size_t i = 0; i < pieces.size(); ++i) {
                    if (std::string_view(out.data() + pieces[i].name,
                                         pieces[i].name_end - pieces[i].name) == name) {
                        found = i;
                        break;
                    }
                }
            } else {
                if (index.empty()) {
                    for (std::size_t i = 0; i < pieces.size(); ++i) {
                        index.emplace(
                            out.substr(pieces[i].name, pieces[i].name_end - pieces[i].name), i);
                    }
                }
                auto [it, inserted] = index.try_emplace(std::string(name), pieces.size());
                if (!inserted) found = it->second;
            }
            if (found < pieces.size()) {
                pieces[found].value = piece.value;
                pieces[found].value_end = piece.value_end;
                duplicate = true;
            } else {
                pieces.push_back(piece);
            }
            if (!next('}')) break;
        }
        out.push_back('}');
        if (!duplicate) return;
        std::string whole = "{";
        for (const auto& p : pieces) {
            if (whole.size() > 1) whole.push_back(',');
            whole.append(out, p.name, p.name_end - p.name);
            whole.push_back(':');
            whole.append(out, p.value, p.value_end - p.value);
        }
        whole.push_back('}');
        out.resize(start);
        out += whole;
    }

    std::string_view text_;
    std::size_t pos_ = 0;
};

}  // namespace

void append_canonical(std::string& out, std::string_view body, const Field& f) {
    if (!f.found || f.end > body.size() || f.begin >= f.end) return;
    const std::string_view raw = f.raw(body);
    switch (f.kind) {
        case Kind::Null:
        case Kind::Bool:
            out.append(raw);
            return;
        case Kind::Number:
            append_number(out, raw);
            return;
        case Kind::String:
            // Without escapes the bytes are already as the SDK writes them:
            // no quote, backslash or control character can be in there raw.
            if (!f.escaped) {
                out.append(raw);
                return;
            }
            break;
        case Kind::Array:
        case Kind::Object:
            break;
    }
    Canonicaliser(raw).value(out);
}

std::string canonical(std::string_view body, const Field& f) {
    std::string out;
    append_canonical(out, body, f);
    return out;
}

void append_quoted(std::string& out, std::string_view text) {
    out.push_back('"');
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || c == '"' || c == '\\') {
            append_quoted_cp(out, byte);
        } else {
            out.push_back(c);
        }
    }
    out.push_back('"');
}

std::string quote(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 2);
    append_quoted(out, text);
    return out;
}

}  // namespace clayhook::intake

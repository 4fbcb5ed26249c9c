// clayhook/json.hpp - a small, strict JSON reader/writer for plugin authors.
//
// Header-only and standard-library-only on purpose: it ships in the plugin SDK, and plugins must be
// able to use it without pulling in (or clashing with) a third-party JSON library.
//
// Parsing follows RFC 8259 strictly. Webhook payloads come from untrusted senders, so anything the
// RFC does not allow is rejected with a ParseError that says what was wrong and where, rather than
// being "helpfully" accepted and misread.
#pragma once

// g++ 12 at -O2 reports false "may be used uninitialized" warnings inside
// std::variant's copy and move (GCC bug 105593 and kin). Plugin authors build
// with -Werror too, so the SDK silences that one warning for its own code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <charconv>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace clayhook::json {

// Thrown when a Value is used as a kind it is not (as_string() on a number, and so on).
class TypeError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Thrown by parse(). line() and column() are 1-based; column counts bytes, not characters.
class ParseError : public std::runtime_error {
  public:
    ParseError(const std::string& message, std::size_t offset, std::size_t line, std::size_t column)
        : std::runtime_error("json: " + message + " at line " + std::to_string(line) + ", column " +
                             std::to_string(column)),
          offset_(offset),
          line_(line),
          column_(column) {}

    std::size_t offset() const noexcept { return offset_; }
    std::size_t line() const noexcept { return line_; }
    std::size_t column() const noexcept { return column_; }

  private:
    std::size_t offset_;
    std::size_t line_;
    std::size_t column_;
};

namespace detail {
class Parser;

// Integer types other than int and int64_t (size_t, unsigned, long long...), which would otherwise
// be ambiguous between the int, int64_t, double and bool constructors. Character types are left
// out on purpose: Value('x') is far more likely a bug than a number.
template <typename T>
concept OtherInteger =
    std::integral<T> && !std::same_as<T, int> && !std::same_as<T, std::int64_t> &&
    !std::same_as<T, bool> && !std::same_as<T, char> && !std::same_as<T, wchar_t> &&
    !std::same_as<T, char8_t> && !std::same_as<T, char16_t> && !std::same_as<T, char32_t>;
}  // namespace detail

class Value {
  public:
    // The order matches the alternatives of data_, so kind() is just the variant index.
    enum class Kind { Null, Bool, Number, String, Array, Object };
    using Array = std::vector<Value>;
    using Member = std::pair<std::string, Value>;
    using Object = std::vector<Member>;  // a vector, not a map, so insertion order survives

    Value() noexcept = default;
    Value(std::nullptr_t) noexcept {}
    Value(bool b) noexcept : data_(std::in_place_type<bool>, b) {}
    Value(int i) noexcept : Value(static_cast<std::int64_t>(i)) {}
    Value(std::int64_t i) noexcept
        : data_(std::in_place_type<Number>, Number{static_cast<double>(i), i, true}) {}
    template <detail::OtherInteger T>
    Value(T i) noexcept {
        if (std::in_range<std::int64_t>(i)) {
            data_.emplace<Number>(
                Number{static_cast<double>(i), static_cast<std::int64_t>(i), true});
        } else {
            data_.emplace<Number>(Number{static_cast<double>(i), 0, false});
        }
    }
    Value(double d) noexcept : data_(std::in_place_type<Number>, Number{d, 0, false}) {}
    Value(std::string s) : data_(std::in_place_type<std::string>, std::move(s)) {}
    Value(std::string_view s) : data_(std::in_place_type<std::string>, s) {}
    Value(const char* s) : data_(std::in_place_type<std::string>, s) {}

    static Value array() {
        Value v;
        v.data_.emplace<Array>();
        return v;
    }
    static Value object() {
        Value v;
        v.data_.emplace<Object>();
        return v;
    }

    static const char* kind_name(Kind k) noexcept {
        static constexpr const char* names[] = {"null",   "bool",  "number",
                                                "string", "array", "object"};
        return names[static_cast<std::size_t>(k)];
    }

    Kind kind() const noexcept { return static_cast<Kind>(data_.index()); }
    bool is_null() const noexcept { return kind() == Kind::Null; }
    bool is_bool() const noexcept { return kind() == Kind::Bool; }
    bool is_number() const noexcept { return kind() == Kind::Number; }
    bool is_string() const noexcept { return kind() == Kind::String; }
    bool is_array() const noexcept { return kind() == Kind::Array; }
    bool is_object() const noexcept { return kind() == Kind::Object; }
    // True when the number was an integer literal (or integer) that fits int64_t exactly.
    bool is_integer() const noexcept {
        const auto* n = std::get_if<Number>(&data_);
        return n != nullptr && n->exact;
    }

    bool as_bool() const {
        if (const auto* b = std::get_if<bool>(&data_)) return *b;
        throw_kind("bool");
    }
    double as_double() const {
        if (const auto* n = std::get_if<Number>(&data_)) return n->d;
        throw_kind("number");
    }
    // Also accepts integral doubles such as 1e3; fractions and out-of-range values throw instead
    // of being silently truncated.
    std::int64_t as_int64() const {
        if (auto i = exact_int()) return *i;
        if (!is_number()) throw_kind("integer");
        throw TypeError("json: expected integer, got non-integral or out-of-range number");
    }
    const std::string& as_string() const {
        if (const auto* s = std::get_if<std::string>(&data_)) return *s;
        throw_kind("string");
    }
    const Array& items() const {
        if (const auto* a = std::get_if<Array>(&data_)) return *a;
        throw_kind("array");
    }
    const Object& members() const {
        if (const auto* o = std::get_if<Object>(&data_)) return *o;
        throw_kind("object");
    }

    // Elements of an array or members of an object; 0 for every other kind.
    std::size_t size() const noexcept {
        if (const auto* a = std::get_if<Array>(&data_)) return a->size();
        if (const auto* o = std::get_if<Object>(&data_)) return o->size();
        return 0;
    }

    const Value& operator[](std::size_t index) const {
        const Array& a = items();
        if (index >= a.size()) {
            throw TypeError("json: index " + std::to_string(index) +
                            " out of range for array of size " + std::to_string(a.size()));
        }
        return a[index];
    }

    const Value* find(std::string_view key) const noexcept {
        const auto* o = std::get_if<Object>(&data_);
        if (o == nullptr) return nullptr;
        // Searching from the back makes "last one wins" hold even for hand-built duplicates.
        for (auto it = o->rbegin(); it != o->rend(); ++it) {
            if (it->first == key) return &it->second;
        }
        return nullptr;
    }

    // Walks "data.company.domain"; an all-digit segment indexes an array ("items.0.name").
    // Keys that themselves contain '.' cannot be reached this way; use find() for those.
    const Value* at_path(std::string_view dotted) const noexcept {
        const Value* cur = this;
        while (cur != nullptr && !dotted.empty()) {
            std::size_t dot = dotted.find('.');
            std::string_view seg = dotted.substr(0, dot);
            dotted = dot == std::string_view::npos ? std::string_view{} : dotted.substr(dot + 1);
            if (const auto* a = std::get_if<Array>(&cur->data_)) {
                std::size_t index = 0;
                auto [end, ec] = std::from_chars(seg.data(), seg.data() + seg.size(), index);
                bool ok = ec == std::errc{} && end == seg.data() + seg.size() && seg[0] != '+';
                cur = ok && index < a->size() ? &(*a)[index] : nullptr;
            } else {
                cur = cur->find(seg);
            }
        }
        return cur;
    }

    std::string get_string(std::string_view key, std::string_view fallback) const {
        const Value* v = find(key);
        const auto* s = v != nullptr ? std::get_if<std::string>(&v->data_) : nullptr;
        return s != nullptr ? *s : std::string(fallback);
    }
    std::int64_t get_int(std::string_view key, std::int64_t fallback) const noexcept {
        const Value* v = find(key);
        std::optional<std::int64_t> i = v != nullptr ? v->exact_int() : std::nullopt;
        return i.value_or(fallback);
    }
    bool get_bool(std::string_view key, bool fallback) const noexcept {
        const Value* v = find(key);
        const auto* b = v != nullptr ? std::get_if<bool>(&v->data_) : nullptr;
        return b != nullptr ? *b : fallback;
    }
    double get_double(std::string_view key, double fallback) const noexcept {
        const Value* v = find(key);
        const auto* n = v != nullptr ? std::get_if<Number>(&v->data_) : nullptr;
        return n != nullptr ? n->d : fallback;
    }

    // Both builders return *this so calls chain: Value::object().set("a", 1).set("b", true).
    Value& push_back(Value v) {
        auto* a = std::get_if<Array>(&data_);
        if (a == nullptr) throw_kind("array");
        a->push_back(std::move(v));
        return *this;
    }
    Value& set(std::string key, Value v) {
        auto* o = std::get_if<Object>(&data_);
        if (o == nullptr) throw_kind("object");
        for (auto& member : *o) {
            if (member.first == key) {
                member.second = std::move(v);
                return *this;
            }
        }
        o->emplace_back(std::move(key), std::move(v));
        return *this;
    }

  private:
    friend class detail::Parser;

    // The double is always filled in so as_double() works for every number; the int64_t is only
    // meaningful when exact, which keeps ids above 2^53 from being rounded.
    struct Number {
        double d = 0.0;
        std::int64_t i = 0;
        bool exact = false;
    };

    std::optional<std::int64_t> exact_int() const noexcept {
        const auto* n = std::get_if<Number>(&data_);
        if (n == nullptr) return std::nullopt;
        if (n->exact) return n->i;
        // 2^63 is exactly representable, so these bounds are exact too.
        if (std::trunc(n->d) == n->d && n->d >= -9223372036854775808.0 &&
            n->d < 9223372036854775808.0) {
            return static_cast<std::int64_t>(n->d);
        }
        return std::nullopt;
    }

    [[noreturn]] void throw_kind(const char* expected) const {
        throw TypeError(std::string("json: expected ") + expected + ", got " + kind_name(kind()));
    }

    std::variant<std::monostate, bool, Number, std::string, Array, Object> data_;
};

namespace detail {

inline constexpr std::size_t kMaxDepth = 256;

inline bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

// Escape letters and the characters they stand for, position by position; shared by the parser and
// the writer so that the two cannot drift apart.
inline constexpr std::string_view kEscapeLetters = "\"\\/bfnrt";
inline constexpr std::string_view kEscapedChars = "\"\\/\b\f\n\r\t";

inline int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

inline void append_utf8(std::string& out, std::uint32_t cp) {
    auto put = [&out](std::uint32_t byte) { out.push_back(static_cast<char>(byte)); };
    if (cp < 0x80) {
        put(cp);
    } else if (cp < 0x800) {
        put(0xC0 | (cp >> 6));
        put(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        put(0xE0 | (cp >> 12));
        put(0x80 | ((cp >> 6) & 0x3F));
        put(0x80 | (cp & 0x3F));
    } else {
        put(0xF0 | (cp >> 18));
        put(0x80 | ((cp >> 12) & 0x3F));
        put(0x80 | ((cp >> 6) & 0x3F));
        put(0x80 | (cp & 0x3F));
    }
}

// from_chars reports overflow and underflow alike as out of range. They need different handling
// (1e400 is rejected, 1e-400 is just zero), so estimate the decimal exponent of the literal.
inline bool literal_overflows(std::string_view lit) noexcept {
    long long magnitude = 0;
    bool significant = false;
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
    return significant && magnitude + (negative ? -exponent : exponent) > 0;
}

class Parser {
  public:
    explicit Parser(std::string_view text) noexcept : text_(text) {}

    Value parse_document() {
        skip_ws();
        Value v = parse_value(0);
        skip_ws();
        if (pos_ != text_.size())
            fail("unexpected " + describe(pos_) + " after the JSON value", pos_);
        return v;
    }

  private:
    [[noreturn]] void fail(const std::string& message, std::size_t at) const {
        std::size_t line = 1;
        std::size_t line_start = 0;
        for (std::size_t i = 0; i < at && i < text_.size(); ++i) {
            if (text_[i] == '\n') {
                ++line;
                line_start = i + 1;
            }
        }
        throw ParseError(message, at, line, at - line_start + 1);
    }

    std::string describe(std::size_t at) const {
        if (at >= text_.size()) return "end of input";
        const auto byte = static_cast<unsigned char>(text_[at]);
        if (byte >= 0x20 && byte < 0x7F) return std::string("'") + text_[at] + "'";
        const char* digits = "0123456789ABCDEF";
        return std::string("byte 0x") + digits[byte >> 4] + digits[byte & 0xF];
    }

    bool at_end() const noexcept { return pos_ >= text_.size(); }
    bool peek_is(char c) const noexcept { return pos_ < text_.size() && text_[pos_] == c; }
    bool peek_digit() const noexcept { return pos_ < text_.size() && is_digit(text_[pos_]); }

    void skip_digits() noexcept {
        while (peek_digit())
            ++pos_;
    }

    void skip_ws() noexcept {
        while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                       text_[pos_] == '\n' || text_[pos_] == '\r')) {
            ++pos_;
        }
    }

    Value parse_value(std::size_t depth) {
        if (at_end()) fail("unexpected end of input, expected a value", pos_);
        switch (text_[pos_]) {
            case '{':
                return parse_object(depth + 1);
            case '[':
                return parse_array(depth + 1);
            case '"':
                return Value(parse_string());
            case 't':
                return parse_literal("true", Value(true));
            case 'f':
                return parse_literal("false", Value(false));
            case 'n':
                return parse_literal("null", Value());
            default:
                if (text_[pos_] == '-' || is_digit(text_[pos_])) return parse_number();
                fail("expected a value, found " + describe(pos_), pos_);
        }
    }

    Value parse_literal(std::string_view word, Value v) {
        if (text_.substr(pos_, word.size()) != word) {
            fail("invalid literal, expected '" + std::string(word) + "'", pos_);
        }
        pos_ += word.size();
        return v;
    }

    void check_depth(std::size_t depth) const {
        if (depth > kMaxDepth) {
            fail("nesting deeper than " + std::to_string(kMaxDepth) + " levels", pos_);
        }
    }

    Value parse_array(std::size_t depth) {
        check_depth(depth);
        Value result = Value::array();
        auto& items = std::get<Value::Array>(result.data_);
        ++pos_;
        skip_ws();
        if (peek_is(']')) {
            ++pos_;
            return result;
        }
        for (;;) {
            items.push_back(parse_value(depth));
            skip_ws();
            if (peek_is(']')) {
                ++pos_;
                return result;
            }
            if (!peek_is(',')) fail("expected ',' or ']' in array, found " + describe(pos_), pos_);
            std::size_t comma = pos_++;
            skip_ws();
            if (peek_is(']')) fail("trailing comma in array", comma);
        }
    }

    Value parse_object(std::size_t depth) {
        check_depth(depth);
        Value result = Value::object();
        auto& members = std::get<Value::Object>(result.data_);
        // Duplicate keys are resolved while parsing (last value wins, first position kept). Small
        // objects use a linear scan; large ones an index, so hostile input can't go quadratic.
        std::unordered_map<std::string, std::size_t> index;
        auto slot_for = [&](std::string&& key) -> Value& {
            if (members.size() < 16) {
                for (auto& m : members) {
                    if (m.first == key) return m.second;
                }
            } else {
                if (index.empty()) {
                    for (std::size_t i = 0; i < members.size(); ++i)
                        index.emplace(members[i].first, i);
                }
                auto [it, inserted] = index.try_emplace(key, members.size());
                if (!inserted) return members[it->second].second;
            }
            return members.emplace_back(std::move(key), Value()).second;
        };

        ++pos_;
        skip_ws();
        if (peek_is('}')) {
            ++pos_;
            return result;
        }
        for (;;) {
            if (!peek_is('"'))
                fail("expected a string key in object, found " + describe(pos_), pos_);
            std::string key = parse_string();
            skip_ws();
            if (!peek_is(':')) fail("expected ':' after object key, found " + describe(pos_), pos_);
            ++pos_;
            skip_ws();
            Value v = parse_value(depth);
            slot_for(std::move(key)) = std::move(v);
            skip_ws();
            if (peek_is('}')) {
                ++pos_;
                return result;
            }
            if (!peek_is(',')) fail("expected ',' or '}' in object, found " + describe(pos_), pos_);
            std::size_t comma = pos_++;
            skip_ws();
            if (peek_is('}')) fail("trailing comma in object", comma);
        }
    }

    Value parse_number() {
        const std::size_t start = pos_;
        if (peek_is('-')) ++pos_;
        if (!peek_digit()) fail("expected a digit after '-', found " + describe(pos_), pos_);
        if (text_[pos_] == '0') {
            ++pos_;
            if (peek_digit()) fail("leading zeros are not allowed in numbers", pos_);
        }
        skip_digits();
        bool integral = true;
        if (peek_is('.')) {
            integral = false;
            ++pos_;
            if (!peek_digit()) fail("expected a digit after the decimal point", pos_);
            skip_digits();
        }
        if (peek_is('e') || peek_is('E')) {
            integral = false;
            ++pos_;
            if (peek_is('+') || peek_is('-')) ++pos_;
            if (!peek_digit()) fail("expected a digit in the exponent", pos_);
            skip_digits();
        }

        const std::string_view lit = text_.substr(start, pos_ - start);
        const char* first = lit.data();
        const char* last = lit.data() + lit.size();
        Value result;
        Value::Number& n = result.data_.emplace<Value::Number>();
        // "-0" stays a double so that its sign survives a round trip.
        if (integral && lit != "-0" && std::from_chars(first, last, n.i).ec == std::errc{}) {
            n.exact = true;
            n.d = static_cast<double>(n.i);
            return result;
        }
        n.i = 0;
        if (std::from_chars(first, last, n.d).ec != std::errc{}) {
            if (literal_overflows(lit)) fail("number out of range", start);
            n.d = lit[0] == '-' ? -0.0 : 0.0;
        }
        return result;
    }

    std::string parse_string() {
        const std::size_t open = pos_++;
        std::string out;
        for (;;) {
            // Copy runs of plain ASCII in one go; only quotes, escapes, controls and non-ASCII
            // bytes need a closer look.
            std::size_t run = pos_;
            while (run < text_.size()) {
                const auto byte = static_cast<unsigned char>(text_[run]);
                if (byte == '"' || byte == '\\' || byte < 0x20 || byte >= 0x80) break;
                ++run;
            }
            out.append(text_.substr(pos_, run - pos_));
            pos_ = run;
            if (at_end()) fail("unterminated string", open);
            const auto byte = static_cast<unsigned char>(text_[pos_]);
            if (byte == '"') {
                ++pos_;
                return out;
            }
            if (byte == '\\') {
                parse_escape(out, open);
            } else if (byte < 0x20) {
                fail("unescaped control character (" + describe(pos_) + ") in string", pos_);
            } else {
                copy_utf8(out);
            }
        }
    }

    void parse_escape(std::string& out, std::size_t open) {
        const std::size_t start = pos_++;
        if (at_end()) fail("unterminated string", open);
        const char c = text_[pos_++];
        if (const std::size_t k = kEscapeLetters.find(c); k != std::string_view::npos) {
            out.push_back(kEscapedChars[k]);
            return;
        }
        if (c != 'u')
            fail("invalid escape character " + describe(start + 1) + " after '\\'", start);
        std::uint32_t cp = read_hex4(start);
        if (cp >= 0xDC00 && cp <= 0xDFFF) fail("unpaired low surrogate in \\u escape", start);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            // UTF-16 pairs are the only way to escape characters above U+FFFF; half a pair has no
            // UTF-8 encoding, so it is an error rather than something to pass through.
            if (text_.substr(pos_, 2) != "\\u")
                fail("unpaired high surrogate in \\u escape", start);
            const std::size_t low_start = pos_;
            pos_ += 2;
            std::uint32_t low = read_hex4(low_start);
            if (low < 0xDC00 || low > 0xDFFF) fail("unpaired high surrogate in \\u escape", start);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        append_utf8(out, cp);
    }

    std::uint32_t read_hex4(std::size_t escape_start) {
        std::uint32_t cp = 0;
        for (int i = 0; i < 4; ++i) {
            const int h = at_end() ? -1 : hex_value(text_[pos_]);
            if (h < 0) fail("invalid \\u escape, expected 4 hex digits", escape_start);
            cp = (cp << 4) | static_cast<std::uint32_t>(h);
            ++pos_;
        }
        return cp;
    }

    // Validates one multi-byte UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, nothing
    // above U+10FFFF) so that every string we hand out, and later dump, is valid UTF-8.
    void copy_utf8(std::string& out) {
        const std::size_t start = pos_;
        const auto lead = static_cast<unsigned char>(text_[pos_]);
        // Lead byte ranges exclude C0/C1 (always overlong) and F5..FF (beyond U+10FFFF).
        const std::size_t len = lead >= 0xC2 && lead <= 0xDF   ? 2
                                : lead >= 0xE0 && lead <= 0xEF ? 3
                                : lead >= 0xF0 && lead <= 0xF4 ? 4
                                                               : 0;
        if (len == 0) fail("invalid UTF-8 (" + describe(start) + ") in string", start);
        const std::uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
        std::uint32_t cp = lead & (0x7Fu >> len);  // the payload bits of the lead byte
        for (std::size_t i = 1; i < len; ++i) {
            const std::uint32_t byte =
                start + i < text_.size() ? static_cast<unsigned char>(text_[start + i]) : 0u;
            if ((byte & 0xC0u) != 0x80u) fail("truncated UTF-8 sequence in string", start);
            cp = (cp << 6) | (byte & 0x3Fu);
        }
        if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
            fail("invalid UTF-8 sequence in string", start);
        }
        out.append(text_.substr(start, len));
        pos_ = start + len;
    }

    std::string_view text_;
    std::size_t pos_ = 0;
};

inline void append_quoted(std::string& out, std::string_view s) {
    out.push_back('"');
    for (const char c : s) {
        // '/' may be escaped but needn't be; leaving it alone keeps URLs readable.
        const std::size_t k = c == '/' ? std::string_view::npos : kEscapedChars.find(c);
        if (k != std::string_view::npos) {
            out.push_back('\\');
            out.push_back(kEscapeLetters[k]);
        } else if (static_cast<unsigned char>(c) < 0x20) {
            const char* digits = "0123456789abcdef";
            out += "\\u00";
            out.push_back(digits[(c >> 4) & 0xF]);
            out.push_back(digits[c & 0xF]);
        } else {
            out.push_back(c);
        }
    }
    out.push_back('"');
}

inline void append_value(std::string& out, const Value& v) {
    if (v.is_null()) {
        out += "null";
    } else if (v.is_bool()) {
        out += v.as_bool() ? "true" : "false";
    } else if (v.is_number() && !std::isfinite(v.as_double())) {
        out += "null";  // not representable in JSON; JSON.stringify does the same
    } else if (v.is_number()) {
        // to_chars gives the shortest text that reads back to the same double (the round-trip
        // guarantee of %.17g without its noise digits) and, unlike printf, ignores the locale.
        char buf[32];
        auto r = v.is_integer() ? std::to_chars(buf, buf + sizeof buf, v.as_int64())
                                : std::to_chars(buf, buf + sizeof buf, v.as_double());
        out.append(buf, r.ptr);
    } else if (v.is_string()) {
        append_quoted(out, v.as_string());
    } else if (v.is_array()) {
        out.push_back('[');
        for (std::size_t i = 0; i < v.size(); ++i) {
            if (i > 0) out.push_back(',');
            append_value(out, v[i]);
        }
        out.push_back(']');
    } else {
        out.push_back('{');
        for (const auto& [key, item] : v.members()) {
            if (out.back() != '{') out.push_back(',');  // no value ends in '{': "not the first"
            append_quoted(out, key);
            out.push_back(':');
            append_value(out, item);
        }
        out.push_back('}');
    }
}

}  // namespace detail

// Parses exactly one JSON value (surrounded by optional whitespace). Throws ParseError.
inline Value parse(std::string_view text) {
    return detail::Parser(text).parse_document();
}

// Compact serialisation: no whitespace, object members in insertion order.
inline std::string dump(const Value& v) {
    std::string out;
    detail::append_value(out, v);
    return out;
}

// A JSON string literal (with quotes) for the given UTF-8 text.
inline std::string quote(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 2);
    detail::append_quoted(out, text);
    return out;
}

}  // namespace clayhook::json

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

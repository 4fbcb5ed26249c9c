#pragma once

// The intake's JSON reader: one pass over a webhook body that validates all of
// it and notes where a few dotted paths, given up front, are in it. Nothing is
// built: a found value is a kind and a byte span of the body, decoded (a
// string) or written as canonical JSON text only when asked.
//
// It accepts and refuses exactly what the SDK's reader (clayhook::json::parse,
// plugin-api/include/clayhook/json.hpp) does, with the same message at the
// same offset; paths mean what Value::at_path makes of them (a later duplicate
// key replaces an earlier one); canonical() is byte for byte json::dump of the
// value the SDK would have parsed. tests/intake/json_fields_test.cpp and the
// fuzz target tests/fuzz/json_fields_fuzz.cpp hold it to that. It does not
// include the SDK: the intake's parser is the host's own.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace clayhook::intake {

enum class Kind : std::uint8_t { Null, Bool, Number, String, Array, Object };

const char* kind_name(Kind k) noexcept;

// Dotted paths compiled once (per config) and used for every body.
// Segments are split on '.' as Value::at_path splits them ("a." is "a", ""
// is the whole body); on an object a segment is a member name, on an array
// it must be an index (digits, leading zeros allowed).
class FieldPaths {
  public:
    FieldPaths() = default;
    explicit FieldPaths(const std::vector<std::string>& dotted) {
        for (const auto& d : dotted)
            add(d);
    }

    // The new path's index in the results of extract(). The same path may be
    // added twice; it is then looked up twice.
    std::size_t add(std::string_view dotted);
    std::size_t size() const noexcept { return paths_.size(); }
    const std::string& path(std::size_t i) const { return paths_[i].text; }

  private:
    friend class FieldScanner;
    struct Segment {
        std::string name;
        std::size_t index = kNoIndex;  // as an array index; kNoIndex: none
    };
    static constexpr std::size_t kNoIndex = static_cast<std::size_t>(-1);
    struct Path {
        std::string text;
        std::vector<Segment> segments;
    };
    std::vector<Path> paths_;
};

// Where one path is in the body.
struct Field {
    bool found = false;
    Kind kind = Kind::Null;
    bool escaped = false;   // a String with escapes: raw() is not its text
    std::size_t begin = 0;  // the value's bytes: body[begin, end), strings with their quotes
    std::size_t end = 0;

    std::string_view raw(std::string_view body) const { return body.substr(begin, end - begin); }
};

// Why a body is not JSON: the SDK's message and where (0-based byte offset;
// line and column 1-based, column in bytes).
struct JsonError {
    std::string message;
    std::size_t offset = 0;
    std::size_t line = 0;
    std::size_t column = 0;

    // "json: <message> at line L, column C", the text of the SDK's ParseError.
    std::string what() const;
};

// Validates `body` and fills `out` (resized to paths.size()) with where each
// path is; out[i] is for paths.path(i). False, with `error` filled in and
// `out` meaningless, for a body that is not JSON. Throws nothing but
// std::bad_alloc; allocates nothing when `out` already has room, unless the
// body is malformed (the message).
bool extract(std::string_view body, const FieldPaths& paths, std::vector<Field>& out,
             JsonError& error);

// Just the check, no paths.
bool validate(std::string_view body, JsonError& error);

// The text of a String field, decoded. `f` must come from extract() on this
// body.
std::string string_value(std::string_view body, const Field& f);

// The field's canonical JSON text: what json::dump gives for the value the
// SDK parses there (compact, numbers in their shortest round-trip form,
// strings re-escaped, a duplicate key's last value in its first place).
std::string canonical(std::string_view body, const Field& f);
void append_canonical(std::string& out, std::string_view body, const Field& f);

// A JSON string literal, quotes included, for UTF-8 text (json::quote's
// escaping: \" \\ \b \f \n \r \t, other controls as \u00XX, '/' as is).
std::string quote(std::string_view text);
void append_quoted(std::string& out, std::string_view text);

}  // namespace clayhook::intake

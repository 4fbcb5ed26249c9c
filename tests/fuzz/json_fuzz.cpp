// Fuzz target: the SDK's JSON reader and writer (plugin-api/include/clayhook/json.hpp).
//
// Any input: json::parse either throws ParseError or gives a value; that value's json::dump must
// parse again, to an equal value, whose dump is the same text. Anything else (another exception,
// a sanitizer report, a broken round trip) is a finding.
#include <clayhook/json.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace json = clayhook::json;

namespace {

// The same value as far as a plugin can tell: same kind, same bytes for strings, same double for
// numbers (the sign of zero included), the same int64 for integers, members in the same order.
// A number that was not an integer literal may come back as one ("1.0" dumps as "1").
bool same(const json::Value& a, const json::Value& b) {
    using Kind = json::Value::Kind;
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
        case Kind::Null:
            return true;
        case Kind::Bool:
            return a.as_bool() == b.as_bool();
        case Kind::Number: {
            const double x = a.as_double(), y = b.as_double();
            if (std::isnan(x) || std::isnan(y) || x != y || std::signbit(x) != std::signbit(y))
                return false;
            if (a.is_integer()) return b.is_integer() && a.as_int64() == b.as_int64();
            return true;
        }
        case Kind::String:
            return a.as_string() == b.as_string();
        case Kind::Array: {
            if (a.size() != b.size()) return false;
            for (std::size_t i = 0; i < a.size(); ++i)
                if (!same(a[i], b[i])) return false;
            return true;
        }
        case Kind::Object: {
            const auto& am = a.members();
            const auto& bm = b.members();
            if (am.size() != bm.size()) return false;
            for (std::size_t i = 0; i < am.size(); ++i)
                if (am[i].first != bm[i].first || !same(am[i].second, bm[i].second)) return false;
            return true;
        }
    }
    return false;
}

// Parsing resolves duplicate keys, so every member of a parsed object is the one find() returns.
bool keys_unique(const json::Value& v) {
    if (v.is_array()) {
        for (const auto& item : v.items())
            if (!keys_unique(item)) return false;
    } else if (v.is_object()) {
        for (const auto& [key, item] : v.members())
            if (v.find(key) != &item || !keys_unique(item)) return false;
    }
    return true;
}

[[noreturn]] void broken(const char* what, std::string_view input, const std::string& once,
                         const std::string& twice) {
    std::fprintf(stderr, "FUZZ CHECK FAILED: json: %s\n  input: %zu bytes\n  dump:  %s\n", what,
                 input.size(), once.c_str());
    if (!twice.empty()) std::fprintf(stderr, "  dump of the reparse: %s\n", twice.c_str());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    json::Value first;
    try {
        first = json::parse(input);
    } catch (const json::ParseError&) {
        return 0;  // refusing is fine; anything else thrown is a finding
    }
    if (!keys_unique(first)) broken("an object kept a duplicate key", input, "", "");

    const std::string once = json::dump(first);
    json::Value second;
    try {
        second = json::parse(once);
    } catch (const json::ParseError& e) {
        broken(e.what(), input, once, "");
    }
    const std::string twice = json::dump(second);
    if (!same(first, second)) broken("the dump parses to a different value", input, once, twice);
    if (twice != once) broken("dumping the reparsed value gives other text", input, once, twice);
    return 0;
}

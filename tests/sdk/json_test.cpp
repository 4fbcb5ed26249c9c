// Tests for the plugin SDK's header-only JSON reader/writer (clayhook/json.hpp).
#include <clayhook/json.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>

namespace json = clayhook::json;
using Kind = json::Value::Kind;

namespace {

// Parses text that must be rejected and returns the error, so tests can check where it points.
json::ParseError parse_error(std::string_view text) {
    try {
        json::parse(text);
    } catch (const json::ParseError& e) {
        return e;
    }
    FAIL("expected a ParseError for: " << text);
    throw std::logic_error("unreachable");
}

void check_error_at(std::string_view text, std::size_t line, std::size_t column,
                    std::string_view message_part) {
    INFO("input: " << text);
    const json::ParseError e = parse_error(text);
    CHECK(e.line() == line);
    CHECK(e.column() == column);
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains(std::string(message_part)));
    CHECK_THAT(what, Catch::Contains("line " + std::to_string(line) + ", column " +
                                     std::to_string(column)));
}

}  // namespace

TEST_CASE("parse reads each scalar kind", "[json]") {
    CHECK(json::parse("null").is_null());
    CHECK(json::parse("true").as_bool() == true);
    CHECK(json::parse("false").as_bool() == false);
    CHECK(json::parse("42").as_int64() == 42);
    CHECK(json::parse("-7").as_int64() == -7);
    CHECK(json::parse("2.5").as_double() == 2.5);
    CHECK(json::parse("\"hi\"").as_string() == "hi");
    CHECK(json::parse(" \t\r\n 1 \n").as_int64() == 1);

    const json::Value v = json::parse("\"text\"");
    CHECK(v.kind() == Kind::String);
    CHECK(v.is_string());
    CHECK_FALSE(v.is_number());
    CHECK(v.size() == 0);
}

TEST_CASE("parse reads nested objects and arrays", "[json]") {
    const json::Value v = json::parse(R"({
        "event": "order.created",
        "data": {"id": 17, "tags": ["a", "b"], "lines": [{"sku": "X1", "qty": 2}, []]},
        "empty": {}
    })");
    REQUIRE(v.is_object());
    CHECK(v.size() == 3);
    CHECK(v.find("event")->as_string() == "order.created");

    const json::Value* data = v.find("data");
    REQUIRE(data != nullptr);
    REQUIRE(data->is_object());
    const json::Value* tags = data->find("tags");
    REQUIRE(tags != nullptr);
    REQUIRE(tags->is_array());
    REQUIRE(tags->size() == 2);
    CHECK((*tags)[0].as_string() == "a");
    CHECK(tags->items()[1].as_string() == "b");

    const json::Value& lines = *data->find("lines");
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].find("qty")->as_int64() == 2);
    CHECK(lines[1].is_array());
    CHECK(lines[1].size() == 0);
    CHECK(v.find("empty")->is_object());
    CHECK(v.find("empty")->members().empty());
}

TEST_CASE("objects keep insertion order and the last duplicate wins", "[json]") {
    const json::Value v = json::parse(R"({"zeta": 1, "alpha": 2, "mid": 3})");
    const auto& members = v.members();
    REQUIRE(members.size() == 3);
    CHECK(members[0].first == "zeta");
    CHECK(members[1].first == "alpha");
    CHECK(members[2].first == "mid");
    CHECK(json::dump(v) == R"({"zeta":1,"alpha":2,"mid":3})");

    const json::Value dup = json::parse(R"({"a": 1, "b": 2, "a": 3})");
    CHECK(dup.find("a")->as_int64() == 3);
    REQUIRE(dup.size() == 2);  // resolved while parsing: first position, last value
    CHECK(dup.members()[0].first == "a");
    CHECK(dup.members()[0].second.as_int64() == 3);
    CHECK(dup.get_int("a", 0) == 3);

    // Large objects take a different (indexed) path for duplicates; check it agrees.
    std::string big = "{";
    for (int i = 0; i < 40; ++i)
        big += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
    big += "\"k5\":500,\"k30\":3000}";
    const json::Value large = json::parse(big);
    CHECK(large.size() == 40);
    CHECK(large.get_int("k5", 0) == 500);
    CHECK(large.get_int("k30", 0) == 3000);
    CHECK(large.get_int("k39", 0) == 39);
    CHECK(large.members()[5].first == "k5");
}

TEST_CASE("integers stay exact in int64 and fractions or exponents become doubles", "[json]") {
    const json::Value id = json::parse("9007199254740993");
    CHECK(id.is_integer());
    CHECK(id.as_int64() == 9007199254740993);
    CHECK(json::dump(id) == "9007199254740993");

    CHECK(json::parse("9223372036854775807").as_int64() ==
          std::numeric_limits<std::int64_t>::max());
    CHECK(json::parse("-9223372036854775808").as_int64() ==
          std::numeric_limits<std::int64_t>::min());
    CHECK(json::parse("1200").is_integer());

    const json::Value too_big = json::parse("9223372036854775808");
    CHECK_FALSE(too_big.is_integer());
    CHECK(too_big.as_double() == 9223372036854775808.0);
    CHECK_THROWS_AS(too_big.as_int64(), json::TypeError);

    const json::Value frac = json::parse("0.1");
    CHECK_FALSE(frac.is_integer());
    CHECK(frac.as_double() == 0.1);
    CHECK_THROWS_AS(frac.as_int64(), json::TypeError);

    const json::Value expo = json::parse("1E3");
    CHECK_FALSE(expo.is_integer());
    CHECK(expo.as_double() == 1000.0);
    CHECK(expo.as_int64() == 1000);  // integral doubles still convert

    CHECK(json::parse("-2.5e-3").as_double() == -0.0025);
    CHECK(json::parse("1e-400").as_double() == 0.0);
    CHECK(std::signbit(json::parse("-0").as_double()));
    CHECK(json::parse("0").as_int64() == 0);
}

TEST_CASE("string escapes and surrogate pairs decode to UTF-8", "[json]") {
    CHECK(json::parse(R"("a\"b\\c\/d")").as_string() == "a\"b\\c/d");
    CHECK(json::parse(R"("\b\f\n\r\t")").as_string() == "\b\f\n\r\t");
    CHECK(json::parse(R"("\u0041\u00e9\u20AC")").as_string() == "A\xC3\xA9\xE2\x82\xAC");
    CHECK(json::parse(R"("\u0000")").as_string() == std::string(1, '\0'));
    CHECK(json::parse(R"("\ud83d\ude00")").as_string() == "\xF0\x9F\x98\x80");  // U+1F600
    CHECK(json::parse(R"("\uDBFF\uDFFF")").as_string() == "\xF4\x8F\xBF\xBF");  // U+10FFFF
    CHECK(json::parse("\"caf\xC3\xA9 \xE2\x82\xAC\"").as_string() == "caf\xC3\xA9 \xE2\x82\xAC");
}

TEST_CASE("malformed input is rejected with its line and column", "[json]") {
    SECTION("trailing comma") {
        check_error_at("[1,2,]", 1, 5, "trailing comma");
        check_error_at("{\"a\":1,}", 1, 7, "trailing comma");
    }
    SECTION("leading zero") {
        check_error_at("[01]", 1, 3, "leading zero");
        check_error_at("-007", 1, 3, "leading zero");
    }
    SECTION("unterminated string points at its opening quote") {
        check_error_at("{\n  \"a\": \"abc", 2, 8, "unterminated string");
        check_error_at("\"abc\\", 1, 1, "unterminated string");
    }
    SECTION("raw control character in a string") {
        check_error_at("\"a\tb\"", 1, 3, "control character");
        check_error_at("[\"line\nbreak\"]", 1, 7, "control character");
    }
    SECTION("bad escapes") {
        check_error_at(R"("ab\q")", 1, 4, "invalid escape");
        check_error_at(R"("\u12G4")", 1, 2, "hex digits");
    }
    SECTION("lone surrogates") {
        check_error_at(R"("\ud800")", 1, 2, "unpaired high surrogate");
        check_error_at(R"("\ud800\u0041")", 1, 2, "unpaired high surrogate");
        check_error_at(R"("x\udc00")", 1, 3, "unpaired low surrogate");
    }
    SECTION("trailing garbage") {
        check_error_at("{} x", 1, 4, "after the JSON value");
        check_error_at("1 2", 1, 3, "after the JSON value");
        check_error_at("[1]\n]", 2, 1, "after the JSON value");
    }
    SECTION("empty input") {
        check_error_at("", 1, 1, "unexpected end of input");
        check_error_at("  \n ", 2, 2, "unexpected end of input");
    }
    SECTION("non-JSON extensions") {
        check_error_at("NaN", 1, 1, "expected a value");
        check_error_at("[Infinity]", 1, 2, "expected a value");
        check_error_at("[1, // c\n2]", 1, 5, "expected a value");
        check_error_at("{'a': 1}", 1, 2, "string key");
        check_error_at("[tru]", 1, 2, "invalid literal");
        check_error_at("1.", 1, 3, "decimal point");
        check_error_at("1e+", 1, 4, "exponent");
        check_error_at("-", 1, 2, "digit after '-'");
        check_error_at("1e400", 1, 1, "out of range");
        check_error_at("{\"a\" 1}", 1, 6, "':'");
    }
    SECTION("invalid UTF-8 in a string") {
        check_error_at("\"\xC3\"", 1, 2, "UTF-8");
        check_error_at("\"\xC0\x80\"", 1, 2, "UTF-8");          // overlong NUL
        check_error_at("\"\xED\xA0\x80\"", 1, 2, "UTF-8");      // encoded surrogate
        check_error_at("\"ok \xE0\x80\x80\"", 1, 5, "UTF-8");   // overlong 3-byte form
        check_error_at("\"\xF4\x90\x80\x80\"", 1, 2, "UTF-8");  // above U+10FFFF
        check_error_at("\"\xF5\x80\x80\x80\"", 1, 2, "UTF-8");  // never a lead byte
        check_error_at("\"\x80\"", 1, 2, "UTF-8");              // stray continuation
        CHECK(json::parse("\"\xF0\x9F\x98\x80\xEF\xBF\xBF\"").as_string() ==
              "\xF0\x9F\x98\x80\xEF\xBF\xBF");
    }
    SECTION("offset is the byte index") {
        const json::ParseError e = parse_error("[1,\n 2,]");
        CHECK(e.offset() == 6);
        CHECK(e.line() == 2);
        CHECK(e.column() == 3);
    }
}

TEST_CASE("nesting is limited to 256 levels", "[json]") {
    const std::string ok = std::string(256, '[') + std::string(256, ']');
    CHECK_NOTHROW(json::parse(ok));

    check_error_at(std::string(257, '[') + std::string(257, ']'), 1, 257, "nesting");
    std::string objects;
    for (int i = 0; i < 257; ++i)
        objects += "{\"a\":";
    check_error_at(objects, 1, 5 * 256 + 1, "nesting");
}

TEST_CASE("at_path walks object keys and array indices", "[json]") {
    const json::Value v = json::parse(R"({
        "data": {"company": {"domain": "example.com"}},
        "items": [{"name": "first"}, {"name": "second"}],
        "matrix": [[1, 2], [3, 4]],
        "byindex": {"0": "zero"}
    })");
    REQUIRE(v.at_path("data.company.domain") != nullptr);
    CHECK(v.at_path("data.company.domain")->as_string() == "example.com");
    CHECK(v.at_path("items.1.name")->as_string() == "second");
    CHECK(v.at_path("matrix.1.0")->as_int64() == 3);
    CHECK(v.at_path("byindex.0")->as_string() == "zero");  // digits are keys on objects
    CHECK(v.at_path("data")->is_object());
    CHECK(v.at_path("") == &v);

    CHECK(v.at_path("data.company.missing") == nullptr);
    CHECK(v.at_path("items.2.name") == nullptr);
    CHECK(v.at_path("items.x") == nullptr);
    CHECK(v.at_path("items.-1") == nullptr);
    CHECK(v.at_path("data.company.domain.deeper") == nullptr);
    CHECK(v.at_path("items.99999999999999999999999") == nullptr);
    CHECK(json::parse("[1]").find("0") == nullptr);
}

TEST_CASE("convenience getters fall back when absent or of another kind", "[json]") {
    const json::Value v =
        json::parse(R"({"name": "acme", "count": 1200, "ratio": 0.5, "on": true, "nil": null})");
    CHECK(v.get_string("name", "x") == "acme");
    CHECK(v.get_string("missing", "x") == "x");
    CHECK(v.get_string("count", "x") == "x");

    CHECK(v.get_int("count", -1) == 1200);
    CHECK(v.get_int("missing", -1) == -1);
    CHECK(v.get_int("name", -1) == -1);
    CHECK(v.get_int("ratio", -1) == -1);

    CHECK(v.get_bool("on", false) == true);
    CHECK(v.get_bool("missing", true) == true);
    CHECK(v.get_bool("nil", true) == true);

    CHECK(v.get_double("ratio", 9.0) == 0.5);
    CHECK(v.get_double("count", 9.0) == 1200.0);
    CHECK(v.get_double("name", 9.0) == 9.0);

    const json::Value not_object = json::parse("[1]");
    CHECK(not_object.get_string("name", "fb") == "fb");
    CHECK(not_object.get_int("name", 3) == 3);
}

TEST_CASE("accessors throw TypeError naming expected and actual kinds", "[json]") {
    const json::Value num = json::parse("5");
    CHECK_THROWS_AS(num.as_string(), json::TypeError);
    CHECK_THROWS_WITH(num.as_string(), Catch::Contains("string") && Catch::Contains("number"));
    CHECK_THROWS_WITH(json::Value().as_bool(), Catch::Contains("bool") && Catch::Contains("null"));
    CHECK_THROWS_AS(num.items(), json::TypeError);
    CHECK_THROWS_AS(num.members(), json::TypeError);
    CHECK_THROWS_AS(json::parse("[1]")[1], json::TypeError);
    CHECK_THROWS_AS(json::parse("\"s\"").as_double(), json::TypeError);
    CHECK(num.find("x") == nullptr);
}

TEST_CASE("builders construct values of each kind", "[json]") {
    json::Value v = json::Value::object();
    v.set("null", nullptr)
        .set("bool", true)
        .set("int", 3)
        .set("big", std::int64_t{9007199254740993})
        .set("size", std::size_t{7})
        .set("double", 1.5)
        .set("str", std::string("s"))
        .set("view", std::string_view("v"))
        .set("cstr", "c")
        .set("list", json::Value::array().push_back(1).push_back("two"));
    v.set("int", 4);  // replaces in place
    CHECK(json::dump(v) ==
          R"({"null":null,"bool":true,"int":4,"big":9007199254740993,"size":7,"double":1.5,)"
          R"("str":"s","view":"v","cstr":"c","list":[1,"two"]})");
    CHECK(v.find("size")->is_integer());
    CHECK(json::Value(-5LL).as_int64() == -5);
    CHECK(json::Value(7u).as_int64() == 7);
    const json::Value huge(std::numeric_limits<std::uint64_t>::max());
    CHECK_FALSE(huge.is_integer());  // beyond int64_t: kept as the nearest double
    CHECK(huge.as_double() == 18446744073709551615.0);
    CHECK_THROWS_AS(v.push_back(1), json::TypeError);
    CHECK_THROWS_AS(json::Value::array().set("k", 1), json::TypeError);
}

TEST_CASE("dump output parses back to the same value", "[json]") {
    const std::string text = R"({"s": "tab\t quote\" nl\n \u0001 \ud83d\ude00", "n": [0, -1,)"
                             R"( 9007199254740993, 0.1, -2.5e-300, 1e300, 123.456],)"
                             R"( "o": {"b": false, "z": null, "e": [], "eo": {}}})";
    const std::string once = json::dump(json::parse(text));
    const json::Value again = json::parse(once);
    CHECK(json::dump(again) == once);
    CHECK(again.at_path("n.3")->as_double() == 0.1);
    CHECK(again.at_path("n.4")->as_double() == -2.5e-300);
    CHECK(again.at_path("n.2")->as_int64() == 9007199254740993);
    CHECK(again.at_path("s")->as_string() == "tab\t quote\" nl\n \x01 \xF0\x9F\x98\x80");

    CHECK(json::dump(json::Value(std::numeric_limits<double>::infinity())) == "null");
    CHECK(json::dump(json::Value(std::nan(""))) == "null");
    CHECK(json::parse(json::dump(json::Value(1.0 / 3.0))).as_double() == 1.0 / 3.0);
}

TEST_CASE("quote escapes quotes, backslashes and control characters", "[json]") {
    CHECK(json::quote("plain") == "\"plain\"");
    CHECK(json::quote("") == "\"\"");
    CHECK(json::quote("a\"b\\c") == R"("a\"b\\c")");
    CHECK(json::quote("\n\t\r\b\f") == R"("\n\t\r\b\f")");
    CHECK(json::quote(std::string_view("\x01\x1f\0", 3)) == R"("\u0001\u001f\u0000")");
    CHECK(json::quote("/ \xC3\xA9") == "\"/ \xC3\xA9\"");
    CHECK(json::parse(json::quote("x\"\n\x02y")).as_string() == "x\"\n\x02y");
}

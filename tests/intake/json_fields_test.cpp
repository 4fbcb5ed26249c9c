// The intake's JSON field extractor (host/intake/JsonFields): what it finds at
// dotted paths, its canonical text, its errors, and a differential run
// against the SDK's reader (clayhook/json.hpp) over a generated corpus of
// valid and broken bodies, which it must agree with exactly.
#include "http/IntakeRig.h"
#include "http/IntakeServer.h"
#include "intake/JsonFields.h"
#include "intake/JsonFieldsDiff.h"
#include "routing/Routes.h"
#include "support/TestPaths.h"
#include "verify/Verifier.h"

#include <clayhook/json.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

using namespace clayhook;
using intake::Kind;

namespace {

const std::string kClayBody =
    R"({"event":"enrichment.completed","table_id":"t_abc123","row_id":"row_00000042",)"
    R"("timestamp":"2026-11-26T12:00:42.042Z","data":{"email":"person42@example.com",)"
    R"("full_name":"Person 42","company":{"name":"Company 42","domain":"company42.com",)"
    R"("industry":"Software","employee_count":1200},"linkedin":{"url":)"
    R"("https://www.linkedin.com/in/person42","title":"VP Sales"},"enrichment":)"
    R"({"provider":"clearbit","column":"Company Enrichment","credits_used":2}}})";

struct Found {
    bool ok = false;
    std::string error;  // JsonError::what() when !ok
    std::vector<intake::Field> fields;
};

Found extract(std::string_view body, const std::vector<std::string>& paths) {
    Found r;
    intake::JsonError e;
    r.ok = intake::extract(body, intake::FieldPaths(paths), r.fields, e);
    if (!r.ok) r.error = e.what();
    return r;
}

// The canonical text at `path`, or "<none>" when nothing is there.
std::string canonical_at(std::string_view body, const std::string& path) {
    Found r = extract(body, {path});
    REQUIRE(r.ok);
    return r.fields[0].found ? intake::canonical(body, r.fields[0]) : "<none>";
}

std::string string_at(std::string_view body, const std::string& path) {
    Found r = extract(body, {path});
    REQUIRE(r.ok);
    REQUIRE(r.fields[0].found);
    REQUIRE(r.fields[0].kind == Kind::String);
    return intake::string_value(body, r.fields[0]);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Valid documents with what is hard to get right: duplicate keys, escaped
// keys, tricky numbers and strings, whitespace, deep nesting.
class Generator {
  public:
    explicit Generator(std::uint32_t seed) : rng_(seed) {}

    std::string document() {
        std::string out;
        ws(out);
        value(out, 0);
        ws(out);
        return out;
    }

  private:
    std::size_t pick(std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
    }

    void ws(std::string& out) {
        static const char* const spaces[] = {"", "", "", " ", "\n", "\t", "\r\n  ", " \t "};
        out += spaces[pick(std::size(spaces))];
    }

    void value(std::string& out, int depth) {
        const std::size_t k = pick(depth > 6 ? 4 : 7);
        if (k == 0) {
            static const char* const numbers[] = {"0",
                                                  "-0",
                                                  "1",
                                                  "-1",
                                                  "1.0",
                                                  "-0.0",
                                                  "1e2",
                                                  "1E+2",
                                                  "1e-2",
                                                  "-1.5e-3",
                                                  "0.1",
                                                  "123e-2",
                                                  "1e21",
                                                  "1e22",
                                                  "100000000000000000000",
                                                  "9223372036854775807",
                                                  "9223372036854775808",
                                                  "-9223372036854775808",
                                                  "-9223372036854775809",
                                                  "123456789012345678901234567890",
                                                  "1e308",
                                                  "1.7976931348623157e308",
                                                  "1e-400",
                                                  "-1e-400",
                                                  "4.9e-324",
                                                  "2.5e-324",
                                                  "1e-320",
                                                  "0e0",
                                                  "0E-5",
                                                  "-0e+3",
                                                  "1152921504606846976.0",
                                                  "3.141592653589793",
                                                  "2.2250738585072014e-308",
                                                  "0.000001",
                                                  "1e-7",
                                                  "12345.6789e-3",
                                                  "9007199254740993"};
            out += numbers[pick(std::size(numbers))];
        } else if (k == 1) {
            string(out);
        } else if (k == 2) {
            static const char* const literals[] = {"true", "false", "null"};
            out += literals[pick(3)];
        } else if (k == 3 || k == 4) {
            out += '{';
            const std::size_t n = pick(6);
            for (std::size_t i = 0; i < n; ++i) {
                if (i > 0) out += ',';
                ws(out);
                key(out);
                ws(out);
                out += ':';
                ws(out);
                value(out, depth + 1);
                ws(out);
            }
            if (n == 0) ws(out);
            out += '}';
        } else {
            out += '[';
            const std::size_t n = pick(5);
            for (std::size_t i = 0; i < n; ++i) {
                if (i > 0) out += ',';
                ws(out);
                value(out, depth + 1);
                ws(out);
            }
            out += ']';
        }
    }

    // Few names, so duplicates are common; some spelled with escapes.
    void key(std::string& out) {
        static const char* const keys[] = {
            R"("a")",     R"("b")",         R"("\u0061")",     R"("a\u0062")", R"("0")",
            R"("1")",     R"("")",          R"("data")",       R"("event")",   R"("row_id")",
            R"("\"q\"")", R"("caf\u00e9")", "\"caf\xc3\xa9\"", R"("x\/y")",    R"("\ud83d\ude00")",
            R"("a.b")",   R"("\n")"};
        out += keys[pick(std::size(keys))];
    }

    void string(std::string& out) {
        static const char* const strings[] = {R"("")",
                                              R"("plain")",
                                              R"("enrichment.completed")",
                                              R"("quote \" backslash \\ slash \/")",
                                              R"("\b\f\n\r\t")",
                                              R"("\u0000\u001f\u007f\u0080")",
                                              R"("caf\u00e9")",
                                              "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
                                              R"("\ud83d\ude00")",
                                              R"("\uD83D\uDE00x")",
                                              R"("\u20AC\u0800\uffff")",
                                              "\"\x7f del\"",
                                              R"("https://example.com/a?b=c")",
                                              R"("</script>")"};
        out += strings[pick(std::size(strings))];
    }

    std::mt19937 rng_;
};

// A body with one random change: a byte replaced, removed or put in, a piece
// cut, repeated or swapped for a troublesome token.
std::string mutate(std::string s, std::mt19937& rng) {
    auto pick = [&rng](std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
    };
    static const char* const tokens[] = {"\"",
                                         "\\",
                                         "\\u",
                                         "\\ud800",
                                         "\\udc00",
                                         "\\u00e9",
                                         "\\x",
                                         "{",
                                         "}",
                                         "[",
                                         "]",
                                         ",",
                                         ":",
                                         "-",
                                         "0",
                                         "01",
                                         "1e",
                                         "1e999",
                                         "1e-999",
                                         ".",
                                         "e+",
                                         "true",
                                         "tru",
                                         "null",
                                         "nul",
                                         "\x01",
                                         "\x7f",
                                         "\xc3",
                                         "\xc3\xa9",
                                         "\xe2\x82",
                                         "\xed\xa0\x80",
                                         "\xf4\x90\x80\x80",
                                         "\xc0\xaf",
                                         "\xff",
                                         " ",
                                         "\n",
                                         "\t",
                                         "\r",
                                         "\f",
                                         "\v",
                                         "\"a\":1,",
                                         ",\"event\":\"x\"",
                                         "\"event\":"};
    const std::size_t n = s.size();
    const std::size_t at = n == 0 ? 0 : pick(n);
    switch (pick(6)) {
        case 0:
            if (n > 0) s[at] = static_cast<char>(pick(256));
            break;
        case 1:
            if (n > 0) s.erase(at, 1 + pick(3));
            break;
        case 2:
            s.insert(at, tokens[pick(std::size(tokens))]);
            break;
        case 3:
            if (n > 0) s.resize(at);
            break;
        case 4:
            if (n > 0) s.insert(at, s.substr(pick(n), 1 + pick(20)));
            break;
        default:
            if (n > 0) s.replace(at, 1 + pick(4), tokens[pick(std::size(tokens))]);
            break;
    }
    return s;
}

}  // namespace

TEST_CASE("json fields: a Clay body's fields, with kinds and raw spans", "[json-fields]") {
    const std::vector<std::string> paths = {"event",
                                            "row_id",
                                            "timestamp",
                                            "data.company.employee_count",
                                            "data.company",
                                            "data.linkedin.title",
                                            "data.missing",
                                            "event.deeper",
                                            ""};
    Found r = extract(kClayBody, paths);
    REQUIRE(r.ok);
    REQUIRE(r.fields.size() == paths.size());
    const auto& f = r.fields;
    CHECK(f[0].found);
    CHECK(f[0].kind == Kind::String);
    CHECK(f[0].raw(kClayBody) == R"("enrichment.completed")");
    CHECK(intake::string_value(kClayBody, f[0]) == "enrichment.completed");
    CHECK(intake::string_value(kClayBody, f[1]) == "row_00000042");
    CHECK(intake::string_value(kClayBody, f[2]) == "2026-11-26T12:00:42.042Z");
    CHECK(f[3].kind == Kind::Number);
    CHECK(f[3].raw(kClayBody) == "1200");
    CHECK(f[4].kind == Kind::Object);
    CHECK(intake::canonical(kClayBody, f[4]) ==
          R"({"name":"Company 42","domain":"company42.com","industry":"Software",)"
          R"("employee_count":1200})");
    CHECK(intake::string_value(kClayBody, f[5]) == "VP Sales");
    CHECK_FALSE(f[6].found);
    CHECK_FALSE(f[7].found);
    CHECK(f[8].found);  // "": the whole body
    CHECK(f[8].kind == Kind::Object);
    CHECK(f[8].begin == 0);
    CHECK(f[8].end == kClayBody.size());
}

TEST_CASE("json fields: paths mean what Value::at_path makes of them", "[json-fields]") {
    const std::string body =
        R"({"a":{"b":[10,{"c":"x"},[true]]},"":{"":"empty"},"0":"zero","n":null,)"
        R"("k":{"x.y":1}})";
    CHECK(canonical_at(body, "a.b.0") == "10");
    CHECK(canonical_at(body, "a.b.1.c") == R"("x")");
    CHECK(canonical_at(body, "a.b.2.0") == "true");
    CHECK(canonical_at(body, "a.b.01") == R"({"c":"x"})");  // leading zeros index too
    CHECK(canonical_at(body, "a.b.3") == "<none>");         // past the end
    CHECK(canonical_at(body, "a.b.+1") == "<none>");
    CHECK(canonical_at(body, "a.b.-1") == "<none>");
    CHECK(canonical_at(body, "a.b.1x") == "<none>");
    CHECK(canonical_at(body, "a.b.") == canonical_at(body, "a.b"));  // a trailing '.' is nothing
    CHECK(canonical_at(body, "a.b.99999999999999999999999") == "<none>");
    CHECK(canonical_at(body, "0") == R"("zero")");  // on an object a number is a name
    CHECK(canonical_at(body, ".") == R"({"":"empty"})");
    CHECK(canonical_at(body, "..") == R"("empty")");
    CHECK(canonical_at(body, "n") == "null");
    CHECK(canonical_at(body, "n.x") == "<none>");
    CHECK(canonical_at(body, "k.x.y") == "<none>");  // a name with a '.' is out of reach
    CHECK(canonical_at(body, "a.b.1.c.0") == "<none>");
}

TEST_CASE("json fields: a later duplicate key wins, and what was under the earlier one is gone",
          "[json-fields]") {
    const std::string body = R"({"a":{"b":1,"c":2},"x":1,"a":{"c":3},"x":[1,{"y":2}],"x":"last"})";
    CHECK(canonical_at(body, "a") == R"({"c":3})");
    CHECK(canonical_at(body, "a.b") == "<none>");
    CHECK(canonical_at(body, "a.c") == "3");
    CHECK(canonical_at(body, "x") == R"("last")");
    CHECK(canonical_at(body, "x.1.y") == "<none>");
    // An escaped name is the same name.
    CHECK(canonical_at(R"({"row_id":1,"row\u005fid":2})", "row_id") == "2");
    CHECK(canonical_at(R"({"caf\u00e9":1})", "caf\xc3\xa9") == "1");
    // Duplicates inside a value: first place, last value, as json::dump.
    CHECK(canonical_at(R"({"o":{"a":1,"b":2,"a":3}})", "o") == R"({"a":3,"b":2})");
    CHECK(canonical_at(R"({"o":{"a":1,"\u0061":{"z":1,"z":[]}}})", "o") == R"({"a":{"z":[]}})");
}

TEST_CASE("json fields: canonical text is json::dump's", "[json-fields]") {
    auto dumped = [](const std::string& v) { return canonical_at(R"({"v":)" + v + "}", "v"); };
    CHECK(dumped("1.0") == "1");
    CHECK(dumped("1e2") == "100");
    CHECK(dumped("1E+2") == "100");
    CHECK(dumped("-0") == "-0");
    CHECK(dumped("-0.0") == "-0");
    CHECK(dumped("0") == "0");
    CHECK(dumped("1.5e-3") == "0.0015");
    CHECK(dumped("1e21") == "1e+21");
    CHECK(dumped("1e-400") == "0");
    CHECK(dumped("-1e-400") == "-0");
    CHECK(dumped("9223372036854775807") == "9223372036854775807");
    CHECK(dumped("-9223372036854775808") == "-9223372036854775808");
    CHECK(dumped("9223372036854775808") == "9223372036854775808");
    CHECK(dumped("123456789012345678901234567890") == "1.2345678901234568e+29");
    CHECK(dumped(R"("a\/b")") == R"("a/b")");
    CHECK(dumped(R"("\u0041\u00e9\ud83d\ude00")") == "\"A\xc3\xa9\xf0\x9f\x98\x80\"");
    CHECK(dumped(R"("\u0000\u001F\b\f\n\r\t\"\\")") == R"("\u0000\u001f\b\f\n\r\t\"\\")");
    CHECK(dumped(R"("\u007f")") == "\"\x7f\"");
    CHECK(dumped(R"( [ 1 , { "a" : [ ] , "b" : { } } , "x" ] )") == R"([1,{"a":[],"b":{}},"x"])");
    CHECK(dumped("true") == "true");
    CHECK(dumped("null") == "null");
    CHECK(string_at(R"({"v":"\u00e9\n\"x\""})", "v") == "\xc3\xa9\n\"x\"");
}

TEST_CASE("json fields: a malformed body is refused with the SDK's message and place",
          "[json-fields]") {
    Found r = extract("{\"event\":\n  \"x\",}", {"event"});
    CHECK_FALSE(r.ok);
    CHECK(r.error == "json: trailing comma in object at line 2, column 6");
    intake::JsonError e;
    CHECK_FALSE(intake::validate("[1,2", e));
    CHECK(e.offset == 4);
    CHECK(e.message == "expected ',' or ']' in array, found end of input");
    CHECK_FALSE(intake::validate("", e));
    CHECK(e.message == "unexpected end of input, expected a value");
    CHECK(intake::validate(" \t\r\n\"x\" ", e));
    CHECK_FALSE(intake::validate("\f1", e));
    CHECK_FALSE(intake::validate("1e400", e));
    CHECK(e.message == "number out of range");
    CHECK(intake::validate("1e-400", e));
    CHECK_FALSE(intake::validate(R"("\ud800")", e));
    CHECK(e.message == "unpaired high surrogate in \\u escape");
    CHECK_FALSE(intake::validate("\"\xed\xa0\x80\"", e));
    CHECK_FALSE(intake::validate("{} {}", e));
    CHECK(e.message == "unexpected '{' after the JSON value");
    std::string deep(256, '[');
    CHECK(intake::validate(deep + std::string(256, ']'), e));
    CHECK_FALSE(intake::validate(deep + "[" + std::string(257, ']'), e));
    CHECK(e.message == "nesting deeper than 256 levels");
    CHECK(e.offset == 256);
}

TEST_CASE("json fields: more than 64 paths, and the same path twice", "[json-fields]") {
    std::string body = "{";
    std::vector<std::string> paths;
    for (int i = 0; i < 150; ++i) {
        body += (i > 0 ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i * 3);
        paths.push_back("k" + std::to_string(i));
    }
    body += "}";
    paths.push_back("k7");
    paths.push_back("k150");
    Found r = extract(body, paths);
    REQUIRE(r.ok);
    REQUIRE(r.fields.size() == 152);
    for (int i = 0; i < 150; ++i) {
        INFO(i);
        CHECK(intake::canonical(body, r.fields[i]) == std::to_string(i * 3));
    }
    CHECK(intake::canonical(body, r.fields[150]) == "21");
    CHECK_FALSE(r.fields[151].found);
    CHECK(test::json_fields_mismatch(body, paths).empty());
    // Refused past 64 paths as well, once.
    Found bad = extract(body + "x", paths);
    CHECK_FALSE(bad.ok);
    CHECK(bad.error.find("after the JSON value") != std::string::npos);
}

TEST_CASE("json fields: quote escapes as json::quote", "[json-fields]") {
    const std::string all = std::string("a\"b\\c/d\x01\x1f\x7f\n\t\xc3\xa9", 15);
    CHECK(intake::quote(all) == json::quote(all));
    CHECK(intake::quote("evt_001") == "\"evt_001\"");
    std::string nul("\0", 1);
    CHECK(intake::quote(nul) == R"("\u0000")");
}

TEST_CASE("json fields: agree with the SDK on hand-picked bodies", "[json-fields]") {
    const std::vector<std::string> bodies = {
        kClayBody,
        "{}",
        "[]",
        "null",
        "true",
        "false",
        "0",
        "-0",
        "\"s\"",
        " 1 ",
        "",
        " ",
        "{",
        "}",
        "[",
        "]",
        "[,]",
        "[1,]",
        "{,}",
        R"({"a":1,})",
        R"({"a" 1})",
        R"({"a":})",
        R"({1:2})",
        R"({"a":1 "b":2})",
        "[1 2]",
        "01",
        "-",
        "-a",
        "1.",
        "1.e3",
        "1e",
        "1e+",
        ".5",
        "+1",
        "0x10",
        "1e400",
        "-1e400",
        "1e-400",
        "1" + std::string(400, '0'),
        "0." + std::string(400, '0') + "1",
        "1.7976931348623157e308",
        "1.7976931348623159e308",
        "NaN",
        "Infinity",
        "tru",
        "truex",
        "nul",
        "nulll",
        "falsy",
        R"("abc)",
        R"("\")",
        R"("\x")",
        R"("\u12")",
        R"("\u12g4")",
        R"("\ud800")",
        R"("\ud800\u0041")",
        R"("\ud800\")",
        R"("\udc00")",
        R"("\ud83d\ude00")",
        R"("\uDBFF\uDFFF")",
        "\"\x01\"",
        "\"\x1f\"",
        "\"\x7f\"",
        "\"\x80\"",
        "\"\xc0\xaf\"",
        "\"\xc2\"",
        "\"\xc2\xa9\"",
        "\"\xe0\x80\xaf\"",
        "\"\xed\xa0\x80\"",
        "\"\xef\xbf\xbf\"",
        "\"\xf0\x90\x80\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xf5\x80\x80\x80\"",
        "\"\xff\"",
        "\"\xe2\x82\"",
        "\xef\xbb\xbf{}",
        std::string("{}\0", 3),
        std::string("{\"a\":\"\0\"}", 9),
        "[1]]",
        "{}}",
        "\v1",
        "\f1",
        "1\f",
        "[\"a\"\n,\r\n\"b\"\t]",
        "/* */ {}",
        "{\"a\":1}//",
        R"({"a":{"b":{"c":{"d":[1,[2,[3,{"e":"f"}]]]}}}})",
        std::string(256, '[') + std::string(256, ']'),
        std::string(257, '[') + std::string(257, ']'),
        R"({"event":"a","event":"b","event":null})",
        R"({"event":{"x":1},"event":2})",
        read_file(std::string(test::kSourceDir) + "/tests/fuzz/corpus/json/duplicates.json"),
        read_file(std::string(test::kSourceDir) + "/tests/fuzz/corpus/json/numbers.json"),
        read_file(std::string(test::kSourceDir) + "/tests/fuzz/corpus/json/strings.json"),
        read_file(std::string(test::kSourceDir) + "/tests/fuzz/corpus/json/nested.json"),
        read_file(std::string(test::kSourceDir) +
                  "/tests/fuzz/corpus/json/table-export-completed.json")};
    for (const auto& body : bodies) {
        INFO("body: " << body);
        CHECK(test::json_fields_mismatch(body, test::paths_for(body)) == "");
    }
}

TEST_CASE("json fields: every byte at every place in a string, near the end of the body or not",
          "[json-fields]") {
    // The string scan reads 16 bytes, then 8, then one at a time: each byte
    // value meets each of them, at each offset.
    for (int byte = 0; byte < 256; ++byte) {
        for (std::size_t before = 0; before < 20; ++before) {
            for (std::size_t after : {0, 1, 7, 9, 17}) {
                std::string text(before, 'a');
                text += static_cast<char>(byte);
                text += std::string(after, 'b');
                for (const std::string& body :
                     {"\"" + text + "\"", "[\"" + text + "\"]", "{\"" + text + "\":1}"}) {
                    const std::string diff = test::json_fields_mismatch(body, {"", "0"});
                    if (!diff.empty()) {
                        INFO("byte " << byte << " after " << before << " bytes: " << body);
                        FAIL(diff);
                    }
                }
            }
        }
    }
    SUCCEED();
}

TEST_CASE("json fields: agree with the SDK on generated and mutated bodies", "[json-fields]") {
    std::size_t accepted = 0;
    std::size_t refused = 0;
    auto check = [&](const std::string& body) {
        const std::string diff = test::json_fields_mismatch(body, test::paths_for(body, 60));
        if (!diff.empty()) {
            INFO("body: " << body);
            FAIL(diff);
        }
        intake::JsonError e;
        (intake::validate(body, e) ? accepted : refused) += 1;
    };
    Generator gen(20261126);
    for (int i = 0; i < 3000; ++i)
        check(gen.document());

    std::mt19937 rng(42);
    const std::vector<std::string> seeds = {
        kClayBody,
        read_file(std::string(test::kSourceDir) +
                  "/tests/fuzz/corpus/json/enrichment-completed.json"),
        read_file(std::string(test::kSourceDir) +
                  "/tests/fuzz/corpus/json/table-export-completed.json"),
        read_file(std::string(test::kSourceDir) + "/tests/fuzz/corpus/json/strings.json"),
        read_file(std::string(test::kSourceDir) + "/tests/fuzz/corpus/json/numbers.json"),
        gen.document(),
        gen.document()};
    for (const auto& seed : seeds) {
        REQUIRE_FALSE(seed.empty());
        for (int i = 0; i < 3000; ++i) {
            std::string body = mutate(seed, rng);
            if (i % 3 == 0) body = mutate(body, rng);  // some with two changes
            check(body);
        }
    }
    // Both sides of the line were exercised.
    CHECK(accepted > 3000);
    CHECK(refused > 5000);
}

TEST_CASE(
    "json fields: the intake stores the event type, idempotency key and ordering keys the "
    "SDK's reader gave",
    "[json-fields][intake]") {
    test::IntakeRig h(R"(  - name: fields
    path: /webhooks/fields
    verify: {scheme: token, header: x-token, secrets: ["${INTAKE_S1}"]}
    event_type: {from: body, field: meta.kind}
    idempotency: {fields: [meta.id, meta.list.1, payload]}
)");
    auto route_to = [](const std::string& plugin, const std::string& order_path) {
        RouteTarget t;
        t.plugin = plugin;
        t.patterns.emplace_back("*");
        t.order_path = order_path;
        return t;
    };
    const std::vector<std::string> order_paths = {"meta.order", "payload", "meta.list.0", ""};
    std::vector<RouteTarget> targets;
    for (std::size_t i = 0; i < order_paths.size(); ++i)
        targets.push_back(route_to("p" + std::to_string(i), order_paths[i]));
    h.server->publish(build_intake_routes(
        h.config, std::make_shared<const Routes>(std::move(targets)), h.metrics));

    // What the intake did before it had its own reader, with the SDK's.
    auto sdk_key = [](const std::string& body) {
        const json::Value doc = json::parse(body);
        std::string key = "f:";
        for (const char* f : {"meta.id", "meta.list.1", "payload"}) {
            const json::Value* v = doc.at_path(f);
            if (v == nullptr || v->is_null()) return "b:" + sha256_hex(body);
            const std::string part = json::dump(*v);
            key += std::to_string(part.size()) + ":" + part + "|";
        }
        return key;
    };
    auto sdk_order = [](const std::string& body, const std::string& path) -> std::string {
        if (path.empty()) return "";
        const json::Value doc = json::parse(body);
        const json::Value* v = doc.at_path(path);
        if (v == nullptr || v->is_null()) return "";
        return v->is_string() ? v->as_string() : json::dump(*v);
    };

    const std::vector<std::string> bodies = {
        R"({"meta":{"kind":"row.upd\u0061ted","id":1.0,"list":[0,{"b":2,"a":1,"b":[]}],)"
        R"("order":"o\u00e9\/"},"payload":"x\/y\n"})",
        R"({"meta":{"kind":"first","id":-0},"meta":{"kind":"table.row.created",)"
        R"("id":12345678901234567890,"list":["a","\ud83d\ude00"],"order":{"z":null,"y":1e2}},)"
        R"("payload":{"s":"\u0001","n":[ ],"s":"\u001F"}})",
        "{ \"meta\" : { \"kind\" : \"k\" , \"id\" : \"42\" , \"list\" : [ true , -0.0 ] ,\n"
        "\"order\" : [ 1 , 2.50 , -0.0 , 1E4 ] } , \"payload\" : 5e-1 }",
        R"({"meta":{"kind":"k","id":1,"list":[1,2],"order":[1E400]},"payload":1})",
        R"({"meta":{"kind":"k","id":"42","list":[true,false]},"payload":null})",  // a null: b:
        R"({"meta":{"kind":"k","id":"42"},"payload":1})",                         // missing: b:
    };
    for (const auto& body : bodies) {
        INFO("body: " << body);
        const test::Reply r =
            h.request("POST", "/webhooks/fields", body, {{"x-token", test::kSecret}});
        if (body.find("1E400") != std::string::npos) {  // out of range: refused, as the SDK does
            CHECK(r.status == 400);
            CHECK(r.body == R"({"error":"malformed JSON"})");
            continue;
        }
        REQUIRE(r.status == 200);
        const std::string id = json::parse(r.body).get_string("id", "");
        const auto stored = h.store->get(id);
        REQUIRE(stored);
        const json::Value doc = json::parse(body);
        CHECK(stored->type == doc.at_path("meta.kind")->as_string());
        CHECK(stored->key == sdk_key(body));
        h.store->flush();  // the journal's record indexed: its delivery rows are made then
        const auto deliveries = h.store->event_deliveries(id);
        REQUIRE(deliveries.size() == order_paths.size());
        for (const auto& d : deliveries) {
            INFO("plugin " << d.plugin);
            CHECK(d.order_key == sdk_order(body, order_paths.at(std::stoul(d.plugin.substr(1)))));
        }
    }
    // The first body's key, spelled out: the SDK's JSON text of each field.
    const auto first = h.store->list_events(EventFilter{});
    bool seen = false;
    for (const auto& e : first)
        if (e.key == R"(f:1:1|14:{"b":[],"a":1}|7:"x/y\n"|)") seen = true;
    CHECK(seen);

    // A malformed body: 400 as before, and the log says why as the SDK said it.
    const test::Reply bad = h.request("POST", "/webhooks/fields", R"({"meta":{"kind":"k",}})",
                                      {{"x-token", test::kSecret}});
    CHECK(bad.status == 400);
    CHECK(bad.body == R"({"error":"malformed JSON"})");
    CHECK(h.log_out.str().find("json: trailing comma in object at line 1, column 20") !=
          std::string::npos);
}

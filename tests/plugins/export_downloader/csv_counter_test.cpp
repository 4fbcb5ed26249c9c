// The export-downloader's CSV counter (plugins/export-downloader/
// csv_counter.hpp): RFC 4180 records, whatever the pieces it is fed in.
#include "export-downloader/csv_counter.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

using namespace clayhook::exportdl;

namespace {

struct Count {
    uint64_t records = 0;
    uint64_t data_rows = 0;
    bool open_quote = false;

    bool operator==(const Count&) const = default;
};

Count count(const CsvCounter& c) {
    return {c.records(), c.data_rows(), c.open_quote()};
}

// `text` fed in one piece.
Count whole(const std::string& text) {
    CsvCounter c;
    c.feed(text.data(), text.size());
    return count(c);
}

// `text` fed in pieces that end at `cuts` (ascending offsets).
Count in_pieces(const std::string& text, const std::vector<size_t>& cuts) {
    CsvCounter c;
    size_t at = 0;
    for (size_t cut : cuts) {
        c.feed(text.data() + at, cut - at);
        at = cut;
    }
    c.feed(text.data() + at, text.size() - at);
    return count(c);
}

struct Case {
    const char* name;
    std::string text;
    uint64_t records;
    bool open_quote;
};

const std::vector<Case>& cases() {
    static const std::vector<Case> kCases = {
        {"empty file", "", 0, false},
        {"header only, LF", "a,b\n", 1, false},
        {"header only, no newline", "a,b", 1, false},
        {"LF", "h\n1\n2\n", 3, false},
        {"CRLF", "h\r\n1\r\n2\r\n", 3, false},
        {"CRLF, no final newline", "h\r\n1\r\n2", 3, false},
        {"mixed CRLF and LF", "h\r\n1\n2\r\n3", 4, false},
        {"empty lines do not count", "h\n\n1\n\n\n2\n\n", 3, false},
        {"blank CRLF lines do not count", "\r\n\r\nh\r\n\r\n1\r\n", 2, false},
        {"only newlines", "\n\n\n", 0, false},
        {"only CRLF", "\r\n", 0, false},
        {"a lone CR does not end a record", "h\r1\r2\n", 1, false},
        {"a lone CR is not content", "h\n\r\n\r", 1, false},
        {"a comma is content", "h\n,\n", 2, false},
        {"a space is content", "h\n \n", 2, false},
        {"quoted LF", "h\n\"a\nb\",c\n2\n", 3, false},
        {"quoted CRLF", "h\r\n\"a\r\nb\"\r\n", 2, false},
        {"quoted newlines only", "h\n\"\n\n\n\"\n", 2, false},
        {"escaped quotes", "h\n\"a \"\"quoted\"\" b\",c\n", 2, false},
        {"escaped quote before a quoted newline", "h\n\"x\"\"\n\"\n", 2, false},
        {"an empty quoted field is a record", "h\n\"\"\n", 2, false},
        {"quoted header", "\"id\",\"name\"\r\n\"1\",\"a,b\"\r\n", 2, false},
        {"quoted last field, no newline", "h\n\"a\nb\"", 2, false},
        {"ends inside quotes", "h\n\"unterminated\n", 2, true},
        {"ends inside quotes after an escaped quote", "h\n\"a\"\"", 2, true},
        {"a lone quote", "\"", 1, true},
        {"tab-separated", "a\tb\n1\t2\n", 2, false},
        {"semicolon-separated", "a;b\n1;2", 2, false},
    };
    return kCases;
}

}  // namespace

TEST_CASE("csv counter: RFC 4180 records", "[export-downloader][csv-counter]") {
    for (const auto& c : cases()) {
        INFO(c.name);
        Count got = whole(c.text);
        CHECK(got.records == c.records);
        CHECK(got.data_rows == (c.records == 0 ? 0 : c.records - 1));
        CHECK(got.open_quote == c.open_quote);
    }
    CsvCounter fresh;
    CHECK(fresh.records() == 0);
    CHECK(fresh.data_rows() == 0);
    CHECK_FALSE(fresh.open_quote());
    fresh.feed(nullptr, 0);
    CHECK(fresh.records() == 0);
}

TEST_CASE("csv counter: every split gives the same count", "[export-downloader][csv-counter]") {
    for (const auto& c : cases()) {
        INFO(c.name);
        const Count expected = whole(c.text);
        // Byte by byte.
        std::vector<size_t> every;
        for (size_t i = 1; i < c.text.size(); ++i)
            every.push_back(i);
        CHECK(in_pieces(c.text, every) == expected);
        // Two pieces, cut at every offset (empty pieces included).
        for (size_t cut = 0; cut <= c.text.size(); ++cut) {
            INFO("cut at " << cut);
            CHECK(in_pieces(c.text, {cut}) == expected);
        }
    }
}

TEST_CASE("csv counter: a generated export in random pieces", "[export-downloader][csv-counter]") {
    std::mt19937 rng(4180);  // fixed: a failure reproduces
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    // Fields of every kind: plain, empty, quoted with commas, quotes, LF and
    // CRLF inside; rows ending in LF or CRLF; sometimes an empty line.
    const char* kFields[] = {"plain",
                             "",
                             "\"a,b\"",
                             "\"say \"\"hi\"\"\"",
                             "\"line\nbreak\"",
                             "\"crlf\r\ninside\"",
                             "\"\"",
                             "\"\n\"",
                             "x y",
                             "\"\"\"\""};
    for (int round = 0; round < 20; ++round) {
        std::string text = "id,value,note\r\n";
        const int rows = pick(200);
        for (int r = 0; r < rows; ++r) {
            text += std::to_string(r);  // never an empty record
            for (int f = 0; f < 2; ++f)
                text += std::string(",") + kFields[pick(10)];
            text += pick(2) == 0 ? "\n" : "\r\n";
            if (pick(10) == 0) text += pick(2) == 0 ? "\n" : "\r\n";
        }
        const bool final_newline = pick(2) == 0;
        if (!final_newline && text.back() == '\n') {
            text.pop_back();
            if (text.back() == '\r') text.pop_back();
            if (text.back() == '\n') text.pop_back();  // the optional empty line
            if (text.back() == '\r') text.pop_back();
        }
        INFO("round " << round << ", " << rows << " rows");
        const Count expected{static_cast<uint64_t>(rows) + 1, static_cast<uint64_t>(rows), false};
        CHECK(whole(text) == expected);
        for (int split = 0; split < 25; ++split) {
            std::vector<size_t> cuts;
            size_t at = 0;
            while (true) {
                at += static_cast<size_t>(pick(64));  // 0: an empty piece
                if (at >= text.size()) break;
                cuts.push_back(at);
            }
            CHECK(in_pieces(text, cuts) == expected);
        }
    }
}

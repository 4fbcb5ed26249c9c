// UTF-8 and label checks for text from the network, and terminal-safe output.
#include "text/Text.h"

#include <catch2/catch.hpp>

#include <string>

using namespace clayhook;

TEST_CASE("valid_utf8: well-formed only", "[text]") {
    CHECK(valid_utf8(""));
    CHECK(valid_utf8("plain ascii"));
    CHECK(valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    CHECK_FALSE(valid_utf8("\xff"));
    CHECK_FALSE(valid_utf8("\xc3"));              // truncated
    CHECK_FALSE(valid_utf8("\xc0\xaf"));          // overlong '/'
    CHECK_FALSE(valid_utf8("\xed\xa0\x80"));      // a surrogate
    CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
    CHECK_FALSE(valid_utf8("\xe2\x28\xa1"));
}

TEST_CASE("clean_label: printable UTF-8 of bounded length", "[text]") {
    CHECK(clean_label("enrichment.completed"));
    CHECK(clean_label("caf\xc3\xa9"));
    CHECK_FALSE(clean_label(""));
    CHECK_FALSE(clean_label("a\nb"));
    CHECK_FALSE(clean_label(std::string("a\0b", 3)));
    CHECK_FALSE(clean_label("a\x1b[2J"));
    CHECK_FALSE(clean_label("a\x7f"));
    CHECK_FALSE(clean_label("a\xc2\x9b"));  // C1 CSI
    CHECK_FALSE(clean_label("bad\xff"));
    CHECK(clean_label(std::string(256, 'a')));
    CHECK_FALSE(clean_label(std::string(257, 'a')));
    CHECK(clean_label(std::string(300, 'a'), 300));
}

TEST_CASE("terminal_safe: controls and invalid bytes become visible escapes", "[text]") {
    CHECK(terminal_safe("plain caf\xc3\xa9") == "plain caf\xc3\xa9");
    CHECK(terminal_safe("a\nb\tc\rd") == "a\\nb\\tc\\rd");
    CHECK(terminal_safe("\x1b[31mred") == "\\x1b[31mred");
    CHECK(terminal_safe(std::string("nul\0!", 5)) == "nul\\x00!");
    CHECK(terminal_safe("bad\xff\xfe") == "bad\\xff\\xfe");
    CHECK(terminal_safe("csi\xc2\x9b") == "csi\\u009b");
}

TEST_CASE("to_valid_utf8: invalid bytes become U+FFFD, the rest is kept", "[text]") {
    CHECK(to_valid_utf8("caf\xc3\xa9") == "caf\xc3\xa9");
    CHECK(to_valid_utf8("a\xff"
                        "b") ==
          "a\xef\xbf\xbd"
          "b");
    CHECK(to_valid_utf8("\xc3") == "\xef\xbf\xbd");
    CHECK(valid_utf8(to_valid_utf8("\xed\xa0\x80 \xc0\xaf \xf4\x90\x80\x80")));
}

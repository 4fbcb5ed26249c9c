// The export-downloader's SHA-256 (plugins/export-downloader/sha256.hpp).
#include "export-downloader/sha256.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace clayhook::exportdl;

TEST_CASE("sha256: known digests, whole or in pieces", "[export-downloader][sha256]") {
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex(std::string("a\0b", 3)) != sha256_hex("ab"));

    const std::string million(1'000'000, 'a');
    CHECK(sha256_hex(million) ==
          "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    Sha256 pieces;
    for (size_t at = 0; at < million.size();) {
        size_t n = std::min<size_t>(at % 997 + 1, million.size() - at);
        pieces.update(million.data() + at, n);
        at += n;
    }
    CHECK(pieces.hex() == sha256_hex(million));
}

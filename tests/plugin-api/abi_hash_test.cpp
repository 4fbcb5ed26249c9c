// Envoy's rule for its module ABI: the version is tied to the header's
// content. Edit plugin_abi.h and this test fails until you decide: bump
// CLAYHOOK_ABI_MINOR (an addition at a struct's end) or MAJOR (anything
// else), then record the new hash in plugin-api/abi.sha256.
#include "support/TempDir.h"
#include "support/TestPaths.h"
#include "verify/Verifier.h"

#include <clayhook/plugin_abi.h>

#include <catch2/catch.hpp>

#include <sstream>

TEST_CASE("the ABI header's hash is the one recorded for its version", "[abi]") {
    std::string src = clayhook::test::kSourceDir;
    std::string header =
        clayhook::test::read_file(src + "/plugin-api/include/clayhook/plugin_abi.h");
    REQUIRE(!header.empty());
    std::string hex = clayhook::sha256_hex(header);

    std::string version =
        std::to_string(CLAYHOOK_ABI_MAJOR) + "." + std::to_string(CLAYHOOK_ABI_MINOR);
    std::istringstream lock(clayhook::test::read_file(src + "/plugin-api/abi.sha256"));
    std::string line, recorded;
    while (std::getline(lock, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream fields(line);
        std::string v, h;
        fields >> v >> h;
        if (v == version) recorded = h;
    }
    INFO("plugin_abi.h now hashes to " << hex << " for ABI " << version);
    REQUIRE_FALSE(recorded.empty());
    CHECK(recorded == hex);
}

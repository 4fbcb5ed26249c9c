#include "plugins/AbiVersion.h"

#include <clayhook/plugin_abi.h>

#include <catch2/catch.hpp>

using clayhook::abi_incompatibility;
using clayhook::AbiVersion;

TEST_CASE("ABI negotiation: majors equal and plugin minor not above the host's", "[abi]") {
    struct Row {
        AbiVersion host, plugin;
        bool ok;
    };
    const Row rows[] = {
        {{1, 0}, {1, 0}, true},  {{1, 3}, {1, 0}, true},  {{1, 3}, {1, 3}, true},
        {{1, 3}, {1, 4}, false}, {{1, 0}, {1, 1}, false}, {{1, 0}, {2, 0}, false},
        {{2, 0}, {1, 0}, false}, {{2, 5}, {1, 9}, false}, {{1, 0}, {0, 9}, false},
    };
    for (const auto& r : rows) {
        INFO("host " << r.host.str() << ", plugin " << r.plugin.str());
        std::string why = abi_incompatibility(r.host, r.plugin);
        CHECK(why.empty() == r.ok);
        if (!r.ok) {
            CHECK_THAT(why, Catch::Contains(r.host.str()));
            CHECK_THAT(why, Catch::Contains(r.plugin.str()));
        }
    }
}

TEST_CASE("the host speaks the ABI of the header it was built with", "[abi]") {
    CHECK(clayhook::host_abi().major == CLAYHOOK_ABI_MAJOR);
    CHECK(clayhook::host_abi().minor == CLAYHOOK_ABI_MINOR);
}

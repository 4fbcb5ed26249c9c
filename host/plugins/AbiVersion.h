#pragma once

#include <cstdint>
#include <string>

namespace clayhook {

struct AbiVersion {
    uint32_t major = 0;
    uint32_t minor = 0;
    std::string str() const { return std::to_string(major) + "." + std::to_string(minor); }
};

// The ABI this host speaks (from <clayhook/plugin_abi.h>).
AbiVersion host_abi();

// Falco's rule: majors equal, the plugin's minor not above the host's.
// Returns "" when compatible, else the reason (naming both versions).
std::string abi_incompatibility(AbiVersion host, AbiVersion plugin);

}  // namespace clayhook

#include "cli/DefaultConfig.h"

#include <cstdlib>
#include <filesystem>
#include <system_error>

#ifndef CLAYHOOK_SYSCONF_CONFIG
#define CLAYHOOK_SYSCONF_CONFIG "/etc/clayhook/clayhook.yaml"
#endif

namespace clayhook {

std::string installed_config_file() {
    return CLAYHOOK_SYSCONF_CONFIG;
}

std::string default_config_file(const char* env, const std::string& cwd,
                                const std::string& installed) {
    if (env != nullptr && *env != '\0') return env;
    std::error_code ec;
    if (std::filesystem::exists(std::filesystem::path(cwd) / kCheckoutConfig, ec))
        return std::string(kCheckoutConfig);
    return installed;
}

std::string default_config_file() {
    return default_config_file(std::getenv("CLAYHOOK_CONFIG"), ".", installed_config_file());
}

}  // namespace clayhook

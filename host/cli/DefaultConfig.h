#pragma once

// The config file a command reads when no --config is given, the same for
// every command: $CLAYHOOK_CONFIG when set and not empty; else
// config/clayhook.yaml when it exists under the current directory (a source
// checkout); else the installed config (CLAYHOOK_SYSCONF_CONFIG, e.g.
// /etc/clayhook/clayhook.yaml), also when that does not exist, so that the
// error names the file an installed host expects.

#include <string>
#include <string_view>

namespace clayhook {

// The checkout's config, relative to the current directory.
inline constexpr std::string_view kCheckoutConfig = "config/clayhook.yaml";

// The installed config's path (the build's sysconfdir).
std::string installed_config_file();

// The choice itself, with its inputs given: `env` is $CLAYHOOK_CONFIG
// (nullptr when unset), `cwd` the directory the checkout's config is looked
// for in, `installed` the installed config's path. What it returns is
// relative when it comes from `env` as given or from the checkout (then
// config/clayhook.yaml, as the user would type it).
std::string default_config_file(const char* env, const std::string& cwd,
                                const std::string& installed);

// The choice for this process: $CLAYHOOK_CONFIG, the current directory and
// installed_config_file().
std::string default_config_file();

}  // namespace clayhook

#pragma once

#include "config/Config.h"

#include <optional>
#include <string>
#include <vector>

namespace clayhook {

struct LoadOptions {
    // Folders searched for `bundled:NAME` plugins (NAME.so), in order.
    std::vector<std::string> bundled_plugin_dirs;
    // What the commands use: default_bundled_plugin_dirs().
    static LoadOptions with_bundled();
};

// Reads and validates a YAML config. Throws ConfigError naming file, line,
// column and key for any mistake: YAML syntax, an unknown key (with a
// suggestion), a wrong type or range, a missing required key, a secret
// written in clear. A secret reference that does not resolve (unset variable,
// unreadable file) is not thrown: it is recorded on the Secret, so `check`
// can report every one; `require_secrets` turns them into errors for `serve`.
Config load_config(const std::string& file, const LoadOptions& options);
void require_secrets(const Config& config);

// The folders searched for bundled plugins: $CLAYHOOK_PLUGIN_DIR, then
// <exe>/../plugins (the build tree), then <exe>/../<libdir>/clayhook/plugins
// (the install tree; libdir as CMake installed it).
std::vector<std::string> default_bundled_plugin_dirs();
// Where `bundled:NAME` is: the first NAME.so in `dirs`, as an absolute path.
std::optional<std::string> find_bundled_plugin(const std::string& name,
                                               const std::vector<std::string>& dirs);

}  // namespace clayhook

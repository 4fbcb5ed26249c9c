#pragma once

// A plugin's declared config (ABI 1.1, clayhook_config_key) applied to what
// the operator wrote under its `config:`: the host's own strictness for a
// plugin's keys. Unknown keys (with the nearest declared one suggested),
// missing required keys, wrong types and secrets written in clear are
// refused at their position in the file; defaults are filled in; durations
// are handed to the plugin as integer milliseconds and sizes as integer
// bytes. A bare number is seconds in a CLAYHOOK_CONFIG_DURATION key and
// milliseconds in a CLAYHOOK_CONFIG_DURATION_MS one; a key's name never
// changes that. A plugin that declares nothing gets its config as written
// (1.0).

#include "config/Config.h"

#include <clayhook/plugin_abi.h>

#include <optional>
#include <string>
#include <vector>

namespace clayhook {

struct ConfigKeySpec {
    std::string name;
    // How the host checks and converts the value. Both duration types are
    // kept as CLAYHOOK_CONFIG_DURATION (each is handed over as integer ms),
    // a declared CLAYHOOK_CONFIG_DURATION_MS with bare_number_ms set: they
    // differ only in what a bare number means.
    clayhook_config_type type = CLAYHOOK_CONFIG_STRING;
    bool bare_number_ms = false;  // with CLAYHOOK_CONFIG_DURATION: 1500 is 1500ms, not 1500s
    bool required = false;
    bool secret = false;
    std::optional<std::string> default_value;
    std::string help;
};

const char* config_type_name(clayhook_config_type type);
// The type as `check`, the errors and the docs show it: config_type_name,
// or "duration (bare number = ms)" for a CLAYHOOK_CONFIG_DURATION_MS key.
std::string config_type_name(const ConfigKeySpec& key);

// Copies a descriptor's declaration, checking it: names unique and of
// [a-z0-9_.-]+, known types (an unknown one is refused with the key and the
// type's value), defaults that parse as their type, no default on a
// required key. Throws std::invalid_argument saying what is wrong.
std::vector<ConfigKeySpec> read_config_keys(const clayhook_config_key* keys, size_t count);

// The config to hand to create(): `plugin.config_json` checked against
// `keys`, defaults filled in, units converted. Throws ConfigError at the
// offending key's position (key path plugins[N].config.KEY as `key_prefix`
// says). An empty `keys` returns the config unchanged.
std::string apply_config_schema(const std::vector<ConfigKeySpec>& keys, const PluginConfig& plugin,
                                const std::string& key_prefix);

// What apply_config_schema needs of a PluginConfig, as text for the plugin
// worker process (isolation: process applies the declaration there, where
// the library is loaded), and back.
std::string encode_config_context(const PluginConfig& plugin);
PluginConfig decode_config_context(std::string_view text);  // throws on malformed text

// The declaration as a Markdown table (docs/plugins/*.md carry it between
// <!-- config-table --> markers; a test compares them).
std::string config_table_markdown(const std::vector<ConfigKeySpec>& keys);

}  // namespace clayhook

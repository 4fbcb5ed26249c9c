#include "plugins/ConfigSchema.h"

#include "config/ConfigError.h"
#include "config/Units.h"
#include "text/Text.h"

#include <clayhook/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <set>
#include <stdexcept>
#include <string_view>

namespace clayhook {

namespace {

constexpr uint64_t kMaxSize = 1ULL << 50;  // a PiB: anything larger is a typo

bool valid_key_name(const char* name) {
    if (name == nullptr || *name == '\0') return false;
    for (const char* c = name; *c; ++c)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' ||
              *c == '.'))
            return false;
    return true;
}

constexpr int64_t kMaxDurationMs = 10LL * 366 * 86'400'000;  // ten years, as parse_duration_ms

bool all_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The value the plugin gets for `text` written in the YAML (a default, or a
// quoted value), or why it is not of `type`. `bare_ms`: a duration whose
// bare number is milliseconds (CLAYHOOK_CONFIG_DURATION_MS).
std::optional<json::Value> from_text(clayhook_config_type type, bool bare_ms,
                                     const std::string& text, std::string& why) {
    switch (type) {
        case CLAYHOOK_CONFIG_STRING:
            return json::Value(text);
        case CLAYHOOK_CONFIG_INTEGER: {
            errno = 0;
            char* end = nullptr;
            long long v = std::strtoll(text.c_str(), &end, 10);
            if (text.empty() || errno != 0 || *end != '\0') {
                why = "expected a whole number, found '" + text + "'";
                return std::nullopt;
            }
            return json::Value(static_cast<int64_t>(v));
        }
        case CLAYHOOK_CONFIG_BOOLEAN:
            if (text == "true") return json::Value(true);
            if (text == "false") return json::Value(false);
            why = "expected true or false, found '" + text + "'";
            return std::nullopt;
        case CLAYHOOK_CONFIG_DURATION:
        case CLAYHOOK_CONFIG_DURATION_MS:
            // "1500" is 1500ms in a duration_ms, 1500s in a duration: the
            // same as 1500 unquoted. (Past 12 digits the parser refuses it
            // as written.)
            if (auto ms = parse_duration_ms(
                    bare_ms && all_digits(text) && text.size() <= 12 ? text + "ms" : text, why))
                return json::Value(*ms);
            return std::nullopt;
        case CLAYHOOK_CONFIG_SIZE:
            if (auto b = parse_size_bytes(text, kMaxSize, why)) return json::Value(*b);
            return std::nullopt;
        case CLAYHOOK_CONFIG_STRING_LIST:
        case CLAYHOOK_CONFIG_OBJECT:
            try {
                return json::parse(text);
            } catch (const std::exception& e) {
                why = std::string("not JSON: ") + e.what();
                return std::nullopt;
            }
    }
    why = "unknown type";
    return std::nullopt;
}

// The value the plugin gets for `v` as the operator wrote it, or why not.
std::optional<json::Value> convert(clayhook_config_type type, bool bare_ms, const json::Value& v,
                                   std::string& why) {
    switch (type) {
        case CLAYHOOK_CONFIG_STRING:
            if (v.is_string()) return v;
            why = std::string("expected text, found ") + json::Value::kind_name(v.kind());
            return std::nullopt;
        case CLAYHOOK_CONFIG_INTEGER:
            if (v.is_integer()) return v;
            why = "expected a whole number, found " +
                  (v.is_string() ? "'" + v.as_string() + "'" : json::dump(v));
            return std::nullopt;
        case CLAYHOOK_CONFIG_BOOLEAN:
            if (v.is_bool()) return v;
            why = "expected true or false, found " + json::dump(v);
            return std::nullopt;
        case CLAYHOOK_CONFIG_DURATION:
        case CLAYHOOK_CONFIG_DURATION_MS:
            // A bare number is seconds, as in the host's own keys, or
            // milliseconds in a duration_ms; never anything the name says.
            if (v.is_integer() && v.as_int64() >= 0) {
                const int64_t unit = bare_ms ? 1 : 1000;
                if (v.as_int64() > kMaxDurationMs / unit) {
                    why = "is longer than ten years";
                    return std::nullopt;
                }
                return json::Value(v.as_int64() * unit);
            }
            if (v.is_string()) return from_text(type, bare_ms, v.as_string(), why);
            why = "expected a duration like 250ms, 30s, 5m, 2h or 7d, found " + json::dump(v);
            return std::nullopt;
        case CLAYHOOK_CONFIG_SIZE:
            if (v.is_integer() && v.as_int64() >= 0) return v;
            if (v.is_string()) return from_text(type, bare_ms, v.as_string(), why);
            why = "expected a size like 65536, 100KB or 1MiB, found " + json::dump(v);
            return std::nullopt;
        case CLAYHOOK_CONFIG_STRING_LIST:
            if (v.is_array()) {
                for (const auto& item : v.items())
                    if (!item.is_string()) {
                        why = "expected a list of text, found an item " + json::dump(item);
                        return std::nullopt;
                    }
                return v;
            }
            why = std::string("expected a list of text, found ") + json::Value::kind_name(v.kind());
            return std::nullopt;
        case CLAYHOOK_CONFIG_OBJECT:
            return v;
    }
    why = "unknown type";
    return std::nullopt;
}

}  // namespace

const char* config_type_name(clayhook_config_type type) {
    switch (type) {
        case CLAYHOOK_CONFIG_STRING:
            return "string";
        case CLAYHOOK_CONFIG_INTEGER:
            return "integer";
        case CLAYHOOK_CONFIG_BOOLEAN:
            return "boolean";
        case CLAYHOOK_CONFIG_DURATION:
            return "duration";
        case CLAYHOOK_CONFIG_SIZE:
            return "size";
        case CLAYHOOK_CONFIG_STRING_LIST:
            return "list of strings";
        case CLAYHOOK_CONFIG_OBJECT:
            return "mapping";
        case CLAYHOOK_CONFIG_DURATION_MS:
            return "duration (bare number = ms)";
    }
    return "unknown";
}

std::string config_type_name(const ConfigKeySpec& key) {
    return config_type_name(key.type == CLAYHOOK_CONFIG_DURATION && key.bare_number_ms
                                ? CLAYHOOK_CONFIG_DURATION_MS
                                : key.type);
}

std::vector<ConfigKeySpec> read_config_keys(const clayhook_config_key* keys, size_t count) {
    std::vector<ConfigKeySpec> out;
    if (keys == nullptr || count == 0) return out;
    if (count > 256) throw std::invalid_argument("it declares more than 256 config keys");
    std::set<std::string> seen;
    for (size_t i = 0; i < count; ++i) {
        const clayhook_config_key& k = keys[i];
        if (!valid_key_name(k.name))
            throw std::invalid_argument("config key #" + std::to_string(i + 1) +
                                        ": the name is missing or not of [a-z0-9_.-]+");
        ConfigKeySpec s;
        s.name = k.name;
        if (!seen.insert(s.name).second)
            throw std::invalid_argument("config key '" + s.name + "' is declared twice");
        if (k.type < CLAYHOOK_CONFIG_STRING || k.type > CLAYHOOK_CONFIG_DURATION_MS)
            throw std::invalid_argument("config key '" + s.name + "' has an unknown type " +
                                        std::to_string(k.type) + " (this host knows 0 to " +
                                        std::to_string(CLAYHOOK_CONFIG_DURATION_MS) + ")");
        s.type = static_cast<clayhook_config_type>(k.type);
        if (s.type == CLAYHOOK_CONFIG_DURATION_MS) {
            s.type = CLAYHOOK_CONFIG_DURATION;
            s.bare_number_ms = true;
        }
        if ((k.flags & ~(CLAYHOOK_CONFIG_REQUIRED | CLAYHOOK_CONFIG_SECRET)) != 0)
            throw std::invalid_argument("config key '" + s.name + "' has unknown flags");
        s.required = (k.flags & CLAYHOOK_CONFIG_REQUIRED) != 0;
        s.secret = (k.flags & CLAYHOOK_CONFIG_SECRET) != 0;
        if (s.secret && s.type != CLAYHOOK_CONFIG_STRING)
            throw std::invalid_argument("config key '" + s.name + "': a secret is a string");
        if (k.default_value != nullptr) {
            if (s.required || s.secret)
                throw std::invalid_argument("config key '" + s.name +
                                            "': a required or secret key has no default");
            std::string why;
            if (!from_text(s.type, s.bare_number_ms, k.default_value, why))
                throw std::invalid_argument("config key '" + s.name + "': its default " + why);
            s.default_value = k.default_value;
        }
        s.help = k.help != nullptr ? k.help : "";
        out.push_back(std::move(s));
    }
    return out;
}

std::string apply_config_schema(const std::vector<ConfigKeySpec>& keys, const PluginConfig& plugin,
                                const std::string& key_prefix) {
    if (keys.empty()) return plugin.config_json;
    const json::Value given = json::parse(plugin.config_json);
    auto pos_of = [&](const std::string& name) {
        auto it = plugin.config_keys.find(name);
        return it != plugin.config_keys.end() ? it->second.pos : plugin.config_pos;
    };
    for (const auto& [name, value] : given.members()) {
        if (std::any_of(keys.begin(), keys.end(), [&](const auto& k) { return k.name == name; }))
            continue;
        std::string msg = "unknown key";
        size_t best = 3;
        std::string suggestion;
        for (const auto& k : keys) {
            size_t d = edit_distance(name, k.name);
            if (d < best) best = d, suggestion = k.name;
        }
        if (!suggestion.empty()) {
            msg += " (did you mean '" + suggestion + "'?)";
        } else {
            msg += " (" + std::string(plugin.library) + " takes:";
            for (const auto& k : keys)
                msg += " " + k.name;
            msg += ")";
        }
        throw ConfigError(pos_of(name), key_prefix + "." + name, msg);
    }
    json::Value out = json::Value::object();
    for (const auto& k : keys) {
        const std::string key = key_prefix + "." + k.name;
        const json::Value* v = given.find(k.name);
        if (v == nullptr || v->is_null()) {
            if (k.required)
                throw ConfigError(plugin.config_pos, key,
                                  "is required (" + config_type_name(k) +
                                      (k.help.empty() ? "" : ": " + k.help) + ")");
            if (k.default_value) {
                std::string why;
                out.set(k.name, *from_text(k.type, k.bare_number_ms, *k.default_value, why));
            }
            continue;
        }
        if (k.secret) {
            auto it = plugin.config_keys.find(k.name);
            if (it == plugin.config_keys.end() || !it->second.reference)
                throw ConfigError(pos_of(k.name), key,
                                  "is a secret: write it as ${ENV_VAR}, file:PATH or "
                                  "credential:NAME, never in clear in the config");
        }
        std::string why;
        auto converted = convert(k.type, k.bare_number_ms, *v, why);
        if (!converted) throw ConfigError(pos_of(k.name), key, why);
        out.set(k.name, std::move(*converted));
    }
    return json::dump(out);
}

std::string encode_config_context(const PluginConfig& plugin) {
    auto pos = [](const Position& p) {
        return json::Value::array()
            .push_back(json::Value(p.file))
            .push_back(json::Value(static_cast<int64_t>(p.line)))
            .push_back(json::Value(static_cast<int64_t>(p.column)));
    };
    json::Value keys = json::Value::object();
    for (const auto& [name, info] : plugin.config_keys)
        keys.set(name, json::Value::object().set("pos", pos(info.pos)).set("ref", info.reference));
    return json::dump(json::Value::object()
                          .set("library", plugin.library)
                          .set("config", plugin.config_json)
                          .set("pos", pos(plugin.config_pos))
                          .set("keys", std::move(keys)));
}

PluginConfig decode_config_context(std::string_view text) {
    const json::Value v = json::parse(text);
    auto at = [](const json::Value& o, std::string_view key) -> const json::Value& {
        const json::Value* m = o.find(key);
        if (m == nullptr) throw std::invalid_argument("config context: no " + std::string(key));
        return *m;
    };
    auto pos = [](const json::Value& p) {
        return Position{p[0].as_string(), static_cast<int>(p[1].as_int64()),
                        static_cast<int>(p[2].as_int64())};
    };
    PluginConfig out;
    out.library = at(v, "library").as_string();
    out.config_json = at(v, "config").as_string();
    out.config_pos = pos(at(v, "pos"));
    for (const auto& [name, info] : at(v, "keys").members())
        out.config_keys[name] = {pos(at(info, "pos")), at(info, "ref").as_bool()};
    return out;
}

std::string config_table_markdown(const std::vector<ConfigKeySpec>& keys) {
    std::string out = "| Key | Type | Default | Meaning |\n|---|---|---|---|\n";
    for (const auto& k : keys) {
        std::string def = k.required        ? "required"
                          : k.default_value ? "`" + *k.default_value + "`"
                                            : "none";
        std::string type = config_type_name(k);
        if (k.secret) type += ", secret";
        std::string help = k.help;
        for (size_t p = 0; (p = help.find('|', p)) != std::string::npos; p += 2)
            help.replace(p, 1, "\\|");
        out += "| `" + k.name + "` | " + type + " | " + def + " | " + help + " |\n";
    }
    return out;
}

}  // namespace clayhook

#pragma once

// Command-line parsing shared by the subcommands (Clay, admin).

#include "cli/Commands.h"

#include <algorithm>
#include <initializer_list>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace clayhook::cli {

struct Args {
    std::map<std::string, std::vector<std::string>, std::less<>> values;
    std::vector<std::string> flags;
    std::vector<std::string> positional;

    std::optional<std::string> get(std::string_view name) const {
        auto it = values.find(name);
        if (it == values.end() || it->second.empty()) return std::nullopt;
        return it->second.back();
    }
    bool has(std::string_view name) const {
        return std::find(flags.begin(), flags.end(), name) != flags.end();
    }
};

inline bool listed(std::initializer_list<std::string_view> names, std::string_view n) {
    return std::find(names.begin(), names.end(), n) != names.end();
}

// Options as `--name value` or `--name=value`; `-` is a positional (stdin) and
// `--` ends the options. Returns the problem, or "" when all parsed.
inline std::string parse_args(const std::vector<std::string>& args, size_t from,
                              std::initializer_list<std::string_view> with_value,
                              std::initializer_list<std::string_view> flags, Args& out) {
    bool options_done = false;
    for (size_t i = from; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (options_done || a == "-" || a.rfind("-", 0) != 0) {
            out.positional.push_back(a);
            continue;
        }
        if (a == "--") {
            options_done = true;
            continue;
        }
        std::string name = a, value;
        bool inline_value = false;
        if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
            name = a.substr(0, eq);
            value = a.substr(eq + 1);
            inline_value = true;
        }
        if (name == "-c") name = "--config";
        if (listed(with_value, name)) {
            if (!inline_value) {
                if (i + 1 >= args.size()) return name + " needs a value";
                value = args[++i];
            }
            out.values[name].push_back(value);
        } else if (listed(flags, name) && !inline_value) {
            out.flags.push_back(name);
        } else {
            return "unexpected argument '" + a + "'";
        }
    }
    return "";
}

// The problem, the command's usage lines (command_usage) and where to find
// more; exit 2.
inline int usage_error(std::ostream& err, std::string_view cmd, std::string_view problem,
                       std::string_view usage) {
    const std::string_view name = cmd.substr(0, cmd.find(' '));
    err << "clayhook " << cmd << ": " << problem << "\n"
        << usage << "Run 'clayhook help " << name
        << "' for its options, 'clayhook help' for every command.\n";
    return kExitUsage;
}

}  // namespace clayhook::cli

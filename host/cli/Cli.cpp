#include "cli/Commands.h"

#include "plugins/AbiVersion.h"

#include <cstdlib>
#include <ostream>

#ifndef CLAYHOOK_VERSION
#define CLAYHOOK_VERSION "0.0.0"
#endif

namespace clayhook {

namespace {

constexpr const char* kUsage = R"(usage: clayhook <command> [options]

commands:
  serve  [--config FILE]          run the host
  check  [--config FILE] [--json] validate a config: sources, secrets, plugins, routes
  version                         print the host and plugin ABI versions
  help                            this text

FILE defaults to $CLAYHOOK_CONFIG, else config/clayhook.yaml.
exit codes: 0 ok, 1 failed (check found errors, serve could not start), 2 usage.
)";

std::string default_config() {
    const char* env = std::getenv("CLAYHOOK_CONFIG");
    return env && *env ? env : "config/clayhook.yaml";
}

}  // namespace

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
        (args.empty() ? err : out) << kUsage;
        return args.empty() ? kExitUsage : kExitOk;
    }
    const std::string& cmd = args[0];
    if (cmd == "version" || cmd == "--version") {
        out << "clayhook " << CLAYHOOK_VERSION << " (plugin ABI " << host_abi().str() << ")\n";
        return kExitOk;
    }
    if (cmd != "serve" && cmd != "check") {
        err << "clayhook: unknown command '" << cmd << "'\n\n" << kUsage;
        return kExitUsage;
    }
    std::string config = default_config();
    bool json = false;
    for (size_t i = 1; i < args.size(); ++i) {
        const std::string& a = args[i];
        if ((a == "--config" || a == "-c") && i + 1 < args.size()) {
            config = args[++i];
        } else if (a.rfind("--config=", 0) == 0) {
            config = a.substr(9);
        } else if (a == "--json" && cmd == "check") {
            json = true;
        } else {
            err << "clayhook " << cmd << ": unexpected argument '" << a << "'\n\n" << kUsage;
            return kExitUsage;
        }
    }
    return cmd == "check" ? check_command(config, json, out, err) : serve_command(config, err);
}

}  // namespace clayhook
